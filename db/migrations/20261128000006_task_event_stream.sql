-- migrate:up

-- GET /api/v1/tasks/stream sends every status change as it commits, from
-- LISTEN task_events. A NOTIFY inside a writing transaction takes a
-- database-wide lock at commit and holds it through the WAL flush, so commits
-- go one at a time (migration 2 removed one for that reason; creates ran at
-- half speed). So a change notifies only while some stream is open: each API
-- process with at least one open stream keeps a row here, renewed every few
-- seconds and deleted when its last stream closes; a process that dies leaves
-- a row that simply expires. With no live row the trigger costs one look at
-- this (tiny) table per event.
CREATE TABLE stream_listeners (
    listener   uuid PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

-- Hooked on task_events rather than on tasks: whatever writes the history
-- (record_status_change() today) is free to change. The payload is the
-- stream's event JSON; `error` stays out, a NOTIFY payload must fit 8000
-- bytes. The priority is read from the task, which this same transaction
-- has just written (a primary-key lookup). created_at is spelt in UTC
-- whatever the writer's TimeZone, as the API spells timestamps.
CREATE FUNCTION notify_task_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM stream_listeners WHERE expires_at > now()) THEN
        PERFORM pg_notify('task_events', json_build_object(
            'id', NEW.id,
            'task_id', NEW.task_id,
            'from_status', NEW.from_status,
            'status', NEW.status,
            'priority', (SELECT priority FROM tasks WHERE id = NEW.task_id),
            'attempt', NEW.attempt,
            'created_at', to_char(NEW.created_at AT TIME ZONE 'UTC',
                                  'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'))::text);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER task_events_notify AFTER INSERT ON task_events
    FOR EACH ROW EXECUTE FUNCTION notify_task_event();

-- GET /api/v1/stats/throughput counts the last minutes' events per second.
-- Events are appended in created_at order, so a BRIN index (a few pages,
-- nearly free to keep up to date) finds the recent ones. autosummarize: each
-- filled block range is summarised by autovacuum soon after, instead of
-- being read whole by every query until the next VACUUM.
CREATE INDEX task_events_created_brin_idx ON task_events USING brin (created_at)
    WITH (autosummarize = on);

-- migrate:down

DROP INDEX task_events_created_brin_idx;
DROP TRIGGER task_events_notify ON task_events;
DROP FUNCTION notify_task_event();
DROP TABLE stream_listeners;
