-- migrate:up

-- History and counters once per statement instead of once per row: the worker
-- claims and completes, and the dispatcher marks PENDING, a batch of tasks per
-- UPDATE, and a row-level trigger paid a function call, an INSERT and a counter
-- upsert for every row. With transition tables, one INSERT ... SELECT writes
-- the history (still one task_events row per status change, and still through
-- INSERT, so triggers on task_events fire per row as before) and one grouped
-- upsert moves the counters. An UPDATE trigger with transition tables cannot
-- name columns, so it runs for every UPDATE of tasks and finds the changed rows
-- itself; statements that change no status or priority insert nothing.
-- Counter rows are upserted in (status, priority) order: two statements on one
-- shard lock them in the same order.
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

DROP TRIGGER tasks_status_on_insert ON tasks;
DROP TRIGGER tasks_status_on_change ON tasks;
DROP FUNCTION record_status_change();

CREATE TRIGGER tasks_status_on_insert AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION record_status_changes();
CREATE TRIGGER tasks_status_on_change AFTER UPDATE ON tasks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION record_status_changes();

-- migrate:down

DROP TRIGGER tasks_status_on_change ON tasks;
DROP TRIGGER tasks_status_on_insert ON tasks;
DROP FUNCTION record_status_changes();

CREATE FUNCTION record_status_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    my_shard integer := pg_backend_pid() % 16;
BEGIN
    IF TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM NEW.status THEN
        INSERT INTO task_events (task_id, from_status, status, attempt, error)
        VALUES (NEW.id,
                CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END,
                NEW.status,
                NEW.attempts,
                CASE WHEN NEW.status IN ('PENDING', 'FAILED') THEN NEW.error END);
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO task_counts AS c (status, priority, shard, n)
        VALUES (NEW.status, NEW.priority, my_shard, 1)
        ON CONFLICT (status, priority, shard) DO UPDATE SET n = c.n + 1;
    ELSE
        -- Two different keys: the trigger's WHEN clause guarantees something changed.
        INSERT INTO task_counts AS c (status, priority, shard, n)
        VALUES (OLD.status, OLD.priority, my_shard, -1),
               (NEW.status, NEW.priority, my_shard, 1)
        ON CONFLICT (status, priority, shard) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_status_on_insert AFTER INSERT ON tasks
    FOR EACH ROW EXECUTE FUNCTION record_status_change();
CREATE TRIGGER tasks_status_on_change AFTER UPDATE OF status, priority ON tasks
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.priority IS DISTINCT FROM NEW.priority)
    EXECUTE FUNCTION record_status_change();
