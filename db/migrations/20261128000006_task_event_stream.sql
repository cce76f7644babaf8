-- migrate:up

-- GET /api/v1/tasks/stream sends every status change (a task_events row) as
-- it commits. No trigger announces them: a NOTIFY inside a writing
-- transaction takes a database-wide lock at commit and holds it through the
-- WAL flush, so commits go one at a time instead of being flushed together.
-- Measured with a per-row NOTIFY trigger here, pgbench creates fell from
-- ~1,100 tps to 113-290 tps as soon as one stream was open (migration 2
-- removed the outbox's trigger for the same reason). Instead, as for the
-- outbox, each writing process sends NOTIFY task_events after its commits,
-- coalesced to at most one per ~10 ms in its own tiny statement
-- (sql/events/announce.sql), and the streaming API process then reads the
-- new rows from task_events. That statement notifies only while some stream
-- is open: each API process with at least one open stream keeps a row here,
-- renewed every few seconds and deleted when its last stream closes; a
-- process that dies leaves a row that simply expires. With no live row an
-- announcement is one look at this (tiny) table that writes nothing.
CREATE TABLE stream_listeners (
    listener   uuid PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

-- GET /api/v1/stats/throughput counts the last minutes' events per second.
-- Events are appended in created_at order, so a BRIN index (a few pages,
-- nearly free to keep up to date) finds the recent ones. autosummarize: each
-- filled block range is summarised by autovacuum soon after, instead of
-- being read whole by every query until the next VACUUM.
CREATE INDEX task_events_created_brin_idx ON task_events USING brin (created_at)
    WITH (autosummarize = on);

-- migrate:down

DROP INDEX task_events_created_brin_idx;
DROP TABLE stream_listeners;
