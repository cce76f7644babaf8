-- migrate:up

-- The whole schema as of the first release. Later changes are new migrations on top of this
-- one; db/schema.sql is what they add up to (`make schema` regenerates it).

-- Case-insensitive substring search over name and description.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Statuses and priorities are constrained text rather than enums so a later
-- migration can add a value without rewriting the type.
CREATE TABLE tasks (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 255),
    description         text CHECK (char_length(description) <= 10000),
    priority            text NOT NULL DEFAULT 'MEDIUM'
                        CHECK (priority IN ('LOW', 'MEDIUM', 'HIGH')),
    status              text NOT NULL DEFAULT 'NEW'
                        CHECK (status IN ('NEW', 'PENDING', 'IN_PROGRESS',
                                          'COMPLETED', 'FAILED', 'CANCELLED')),
    kind                text NOT NULL CHECK (char_length(kind) BETWEEN 1 AND 100),
    payload             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(payload) = 'object'),
    result              jsonb,
    error               text,
    attempts            integer NOT NULL DEFAULT 0,
    max_attempts        integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 20),
    timeout_seconds     integer NOT NULL CHECK (timeout_seconds BETWEEN 1 AND 86400),
    run_at              timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    cancel_requested_at timestamptz,
    -- Who holds a running attempt, and until when: the reaper rescues the
    -- task once the lease runs out, whatever the broker thinks.
    worker_id           text,
    lease_expires_at    timestamptz,
    idempotency_key     text CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
    request_hash        text,
    -- Set by GET /api/v1/tasks/{id}/status?wait= while a client waits on this task;
    -- a value in the past means nobody does (no cleanup needed).
    watched_until       timestamptz,

    CONSTRAINT attempts_within_budget CHECK (attempts BETWEEN 0 AND max_attempts),
    -- finished_at is set exactly when the task has reached a final status.
    CONSTRAINT finished_iff_terminal CHECK (
        (finished_at IS NOT NULL) = (status IN ('COMPLETED', 'FAILED', 'CANCELLED'))),
    -- a lease exists exactly while an attempt is running.
    CONSTRAINT leased_iff_in_progress CHECK (
        (lease_expires_at IS NOT NULL) = (status = 'IN_PROGRESS')),
    CONSTRAINT started_when_in_progress CHECK (
        status <> 'IN_PROGRESS' OR started_at IS NOT NULL),
    CONSTRAINT result_only_when_completed CHECK (
        result IS NULL OR status = 'COMPLETED'),
    CONSTRAINT idempotency_key_has_hash CHECK (
        (idempotency_key IS NULL) = (request_hash IS NULL))
);

-- The list endpoint: newest first, optionally filtered by status and/or priority.
CREATE INDEX tasks_created_idx ON tasks (created_at DESC, id DESC);
CREATE INDEX tasks_status_created_idx ON tasks (status, created_at DESC, id DESC);
CREATE INDEX tasks_priority_created_idx ON tasks (priority, created_at DESC, id DESC);
-- The reaper: running attempts ordered by when their lease runs out.
CREATE INDEX tasks_lease_idx ON tasks (lease_expires_at) WHERE status = 'IN_PROGRESS';
CREATE UNIQUE INDEX tasks_idempotency_key_idx ON tasks (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Expiring idempotency keys (IDEMPOTENCY_TTL_SECONDS), oldest first, without reading
-- the tasks that have none. A later migration that rebuilds it on a filled table
-- should use CREATE INDEX CONCURRENTLY (with `transaction:false`).
CREATE INDEX tasks_idempotency_created_idx ON tasks (created_at) WHERE idempotency_key IS NOT NULL;
CREATE INDEX tasks_name_trgm_idx ON tasks USING gin (name gin_trgm_ops);
CREATE INDEX tasks_description_trgm_idx ON tasks USING gin (description gin_trgm_ops);

-- Every status a task has been in, appended by trigger so no code path can
-- change a status without leaving history.
CREATE TABLE task_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id     uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    from_status text,
    status      text NOT NULL,
    attempt     integer NOT NULL,
    error       text,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX task_events_task_idx ON task_events (task_id, id);
-- GET /api/v1/stats/throughput reads the last minutes' events. Rows arrive in
-- created_at order, so a BRIN index of a few pages finds them; autosummarize
-- keeps each filled block range summarised without waiting for a VACUUM.
CREATE INDEX task_events_created_brin_idx ON task_events USING brin (created_at)
    WITH (autosummarize = on);

-- Tasks per status × priority, kept by trigger, so list totals and stats cost
-- a few rows instead of count(*) over the table. Each backend writes its own
-- shard (pid % 16): concurrent transactions rarely wait on one counter row.
CREATE TABLE task_counts (
    status   text NOT NULL,
    priority text NOT NULL,
    shard    integer NOT NULL,
    n        bigint NOT NULL,
    PRIMARY KEY (status, priority, shard)
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);

-- History and counters once per statement, not once per row: the worker and the
-- dispatcher change a batch of tasks per UPDATE. One INSERT ... SELECT writes the
-- history (one task_events row per status change) and one grouped upsert moves the
-- counters. An UPDATE trigger with transition tables cannot name columns, so it
-- runs for every UPDATE of tasks and finds the changed rows itself. Counter rows
-- are upserted in (status, priority) order so two statements on one shard lock
-- them in the same order.
CREATE FUNCTION record_status_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    my_shard integer := pg_backend_pid() % 16;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO task_events (task_id, from_status, status, attempt, error)
        SELECT id, NULL, status, attempts, CASE WHEN status IN ('PENDING', 'FAILED') THEN error END
        FROM new_rows;
        INSERT INTO task_counts AS c (status, priority, shard, n)
        SELECT status, priority, my_shard, count(*)
        FROM new_rows
        GROUP BY status, priority
        ORDER BY status, priority
        ON CONFLICT (status, priority, shard) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        WITH changed AS (
            SELECT n.id, o.status AS old_status, o.priority AS old_priority,
                   n.status, n.priority, n.attempts, n.error
            FROM new_rows n
            JOIN old_rows o ON o.id = n.id
            WHERE o.status IS DISTINCT FROM n.status
               OR o.priority IS DISTINCT FROM n.priority
        ), history AS (
            INSERT INTO task_events (task_id, from_status, status, attempt, error)
            SELECT id, old_status, status, attempts,
                   CASE WHEN status IN ('PENDING', 'FAILED') THEN error END
            FROM changed
            WHERE old_status IS DISTINCT FROM status
        ), moves AS (
            SELECT old_status AS status, old_priority AS priority, -1 AS n FROM changed
            UNION ALL
            SELECT status, priority, 1 FROM changed
        )
        INSERT INTO task_counts AS c (status, priority, shard, n)
        SELECT status, priority, my_shard, sum(n)
        FROM moves
        GROUP BY status, priority
        HAVING sum(n) <> 0
        ORDER BY status, priority
        ON CONFLICT (status, priority, shard) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_status_on_insert AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION record_status_changes();
CREATE TRIGGER tasks_status_on_change AFTER UPDATE ON tasks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION record_status_changes();

-- Deletes (retention) take the counts down row by row; inserts and updates are
-- counted by record_status_changes above.
CREATE FUNCTION count_task_status() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    my_shard integer := pg_backend_pid() % 16;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO task_counts AS c (status, priority, shard, n)
        VALUES (OLD.status, OLD.priority, my_shard, -1)
        ON CONFLICT (status, priority, shard) DO UPDATE SET n = c.n - 1;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO task_counts AS c (status, priority, shard, n)
        VALUES (NEW.status, NEW.priority, my_shard, 1)
        ON CONFLICT (status, priority, shard) DO UPDATE SET n = c.n + 1;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_count_on_delete AFTER DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION count_task_status();

-- A worker listens on 'task_cancel' and stops the attempt named in the payload.
CREATE FUNCTION notify_cancel_requested() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('task_cancel', NEW.id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_notify_cancel AFTER UPDATE OF cancel_requested_at ON tasks
    FOR EACH ROW WHEN (OLD.cancel_requested_at IS NULL
                       AND NEW.cancel_requested_at IS NOT NULL
                       AND NEW.status = 'IN_PROGRESS')
    EXECUTE FUNCTION notify_cancel_requested();

-- A NOTIFY inside a writing transaction takes a database-wide lock at commit and
-- holds it through the WAL flush, serialising commits. So a status change notifies
-- only while a client waits on that task: the WHEN clause (no function call)
-- skips every task nobody watches.
CREATE FUNCTION notify_task_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('task_status', NEW.id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_notify_status AFTER UPDATE OF status ON tasks
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.watched_until > now())
    EXECUTE FUNCTION notify_task_status();

-- What the dispatcher publishes to RabbitMQ. A row is written in the same
-- transaction as the task change that needs a message, so none is lost.
-- No NOTIFY trigger, for the commit-lock reason above: writers send NOTIFY
-- outbox_due after committing (sql/outbox/notify_due.sql), and the dispatcher
-- also polls.
CREATE TABLE outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id          uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    priority         text NOT NULL CHECK (priority IN ('LOW', 'MEDIUM', 'HIGH')),
    available_at     timestamptz NOT NULL DEFAULT now(),
    published_at     timestamptz,
    publish_attempts integer NOT NULL DEFAULT 0,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
-- The dispatcher's scan: unpublished rows that are due.
CREATE INDEX outbox_due_idx ON outbox (available_at, id) WHERE published_at IS NULL;
CREATE INDEX outbox_task_idx ON outbox (task_id);
CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;

-- API processes with at least one open GET /api/v1/tasks/stream. Writers announce
-- new task_events (sql/events/announce.sql, after commit) only while a row here is
-- live; each such process renews its row every few seconds, and a process that
-- dies leaves a row that simply expires.
CREATE TABLE stream_listeners (
    listener   uuid PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

-- migrate:down

DROP TABLE stream_listeners;
DROP TABLE outbox;
DROP TABLE task_events;
DROP TABLE task_counts;
DROP TABLE tasks;
DROP FUNCTION notify_task_status();
DROP FUNCTION notify_cancel_requested();
DROP FUNCTION count_task_status();
DROP FUNCTION record_status_changes();
DROP EXTENSION IF EXISTS pg_trgm;
