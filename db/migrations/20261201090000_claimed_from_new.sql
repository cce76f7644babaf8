-- migrate:up

-- A task whose outbox row its create leased to the API process's own dispatcher is published
-- while the dispatcher marks it PENDING (taskservice/handoff.py), so a quick worker may claim
-- it while it is still NEW. It was published all the same: its history records the PENDING it
-- passed through, so every task's history still reads NEW, PENDING, IN_PROGRESS.
CREATE OR REPLACE FUNCTION record_status_changes() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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
            SELECT n.id, o.status AS old_status, o.priority AS old_priority, o.attempts AS old_attempts,
                   n.status, n.priority, n.attempts, n.error, n.callback_url
            FROM new_rows n
            JOIN old_rows o ON o.id = n.id
            WHERE o.status IS DISTINCT FROM n.status
               OR o.priority IS DISTINCT FROM n.priority
        ), history AS (
            -- A task claimed straight from NEW was published before its dispatcher marked it
            -- PENDING (taskservice/handoff.py): it passed through PENDING, recorded first.
            INSERT INTO task_events (task_id, from_status, status, attempt, error)
            SELECT id, from_status, status, attempt, error
            FROM (
                SELECT 1 AS step, id, 'NEW' AS from_status, 'PENDING' AS status, old_attempts AS attempt,
                       NULL AS error
                FROM changed
                WHERE old_status = 'NEW' AND status = 'IN_PROGRESS'
                UNION ALL
                SELECT 2, id, CASE WHEN old_status = 'NEW' AND status = 'IN_PROGRESS' THEN 'PENDING'
                                   ELSE old_status END,
                       status, attempts, CASE WHEN status IN ('PENDING', 'FAILED') THEN error END
                FROM changed
                WHERE old_status IS DISTINCT FROM status
            ) AS steps
            ORDER BY step, id
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

CREATE OR REPLACE FUNCTION record_status_changes() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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
