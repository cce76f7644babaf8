-- migrate:up

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

-- Case-insensitive substring search over name and description.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
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

CREATE FUNCTION record_task_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_events (task_id, from_status, status, attempt, error)
    VALUES (NEW.id,
            CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END,
            NEW.status,
            NEW.attempts,
            CASE WHEN NEW.status IN ('PENDING', 'FAILED') THEN NEW.error END);
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_event_on_insert AFTER INSERT ON tasks
    FOR EACH ROW EXECUTE FUNCTION record_task_event();
CREATE TRIGGER tasks_event_on_status_change AFTER UPDATE OF status ON tasks
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION record_task_event();

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

-- What the dispatcher publishes to RabbitMQ. A row is written in the same
-- transaction as the task change that needs a message, so none is lost.
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

-- One wake-up per inserting statement; the dispatcher drains everything due.
CREATE FUNCTION notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_due', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox();

-- migrate:down

DROP TABLE outbox;
DROP FUNCTION notify_outbox();
DROP TABLE task_events;
DROP TABLE tasks;
DROP FUNCTION notify_cancel_requested();
DROP FUNCTION record_task_event();
DROP EXTENSION IF EXISTS pg_trgm;
