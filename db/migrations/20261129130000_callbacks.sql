-- migrate:up

-- Completion webhooks: a task may name a URL that is POSTed the task JSON once it
-- reaches COMPLETED, FAILED or CANCELLED.
ALTER TABLE tasks ADD COLUMN callback_url text CHECK (char_length(callback_url) BETWEEN 1 AND 2048);

-- One row per terminal status change of a task with a callback_url, written by
-- record_status_changes() in the transaction of that change; the dispatchers
-- deliver it (sql/callbacks/claim_due.sql) until delivered or out of time.
CREATE TABLE callback_deliveries (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),  -- sent as X-Taskservice-Delivery
    task_id          uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    task_status      text NOT NULL CHECK (task_status IN ('COMPLETED', 'FAILED', 'CANCELLED')),
    url              text NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- while pending, when it is due; a claim moves it past the attempt (the lease)
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    -- finished_at is set exactly when the delivery is settled.
    CONSTRAINT finished_iff_settled CHECK ((finished_at IS NOT NULL) = (status <> 'pending'))
);

CREATE INDEX callback_deliveries_due ON callback_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX callback_deliveries_task_id ON callback_deliveries (task_id);

-- Every POST made (or refused), for GET /api/v1/tasks/{id}/callbacks.
CREATE TABLE callback_attempts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id      uuid NOT NULL REFERENCES callback_deliveries (id) ON DELETE CASCADE,
    attempt          integer NOT NULL CHECK (attempt >= 1),
    started_at       timestamptz NOT NULL,
    duration_seconds double precision NOT NULL CHECK (duration_seconds >= 0),
    status_code      integer,
    error            text,
    outcome          text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed'))
);

CREATE INDEX callback_attempts_delivery_id ON callback_attempts (delivery_id);

-- The status trigger also writes the delivery rows.
CREATE OR REPLACE FUNCTION record_status_changes() RETURNS trigger LANGUAGE plpgsql AS $$
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
                   n.status, n.priority, n.attempts, n.error, n.callback_url
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
        ), callbacks AS (
            -- in the status change's own transaction: no finished task loses its callback
            INSERT INTO callback_deliveries (task_id, task_status, url)
            SELECT id, status, callback_url
            FROM changed
            WHERE old_status IS DISTINCT FROM status
              AND status IN ('COMPLETED', 'FAILED', 'CANCELLED')
              AND callback_url IS NOT NULL
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

-- migrate:down

CREATE OR REPLACE FUNCTION record_status_changes() RETURNS trigger LANGUAGE plpgsql AS $$
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

DROP TABLE callback_attempts;
DROP TABLE callback_deliveries;
ALTER TABLE tasks DROP COLUMN callback_url;
