-- migrate:up

-- Dependencies: a task may wait for other tasks (its parents) to complete.
-- waiting_on counts the parents not COMPLETED yet; it only ever goes down (a
-- COMPLETED task never changes again), and a task gets its outbox row when it
-- reaches 0 (at create, or in the transaction of its last parent's completion).
ALTER TABLE tasks ADD COLUMN waiting_on integer NOT NULL DEFAULT 0 CHECK (waiting_on >= 0);

CREATE TABLE task_dependencies (
    task_id   uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    parent_id uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    PRIMARY KEY (task_id, parent_id)
);

CREATE INDEX task_dependencies_parent_idx ON task_dependencies (parent_id, task_id);

-- GET /api/v1/tasks/?waiting=true
CREATE INDEX tasks_waiting_idx ON tasks (created_at DESC, id DESC) WHERE waiting_on > 0 AND status = 'NEW';

-- When tasks become final, in the same statement's transaction: a COMPLETED
-- parent counts down its children's waiting_on and dispatches those that reach
-- 0; a FAILED or CANCELLED one cancels every waiting descendant at once (one
-- recursive statement, so the trigger this fires again finds none left), each
-- with an error naming its own parent. A statement with no newly final parent
-- costs one index probe per final row.
CREATE FUNCTION settle_dependents() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    released bigint;
BEGIN
    IF NOT EXISTS (
        SELECT 1
        FROM new_rows n
        JOIN old_rows o ON o.id = n.id
        WHERE n.status IN ('COMPLETED', 'FAILED', 'CANCELLED')
          AND o.status IN ('NEW', 'PENDING', 'IN_PROGRESS')
          AND EXISTS (SELECT 1 FROM task_dependencies d WHERE d.parent_id = n.id)
    ) THEN
        RETURN NULL;
    END IF;

    WITH completed AS (
        SELECT n.id
        FROM new_rows n
        JOIN old_rows o ON o.id = n.id
        WHERE n.status = 'COMPLETED' AND o.status IN ('NEW', 'PENDING', 'IN_PROGRESS')
    ), counted_down AS (
        UPDATE tasks c
        SET waiting_on = c.waiting_on - done.parents,
            updated_at = now()
        FROM (SELECT d.task_id, count(*) AS parents
              FROM task_dependencies d
              JOIN completed ON completed.id = d.parent_id
              GROUP BY d.task_id) AS done
        WHERE c.id = done.task_id
        RETURNING c.id, c.priority, c.run_at, c.status, c.waiting_on
    )
    INSERT INTO outbox (task_id, priority, available_at)
    SELECT id, priority, greatest(run_at, now())
    FROM counted_down
    WHERE status = 'NEW' AND waiting_on = 0;
    GET DIAGNOSTICS released = ROW_COUNT;
    IF released > 0 THEN
        -- wake the dispatchers at commit; rare enough not to matter to other commits
        PERFORM pg_notify('outbox_due', '');
    END IF;

    WITH RECURSIVE stopped AS (
        SELECT n.id, n.status
        FROM new_rows n
        JOIN old_rows o ON o.id = n.id
        WHERE n.status IN ('FAILED', 'CANCELLED') AND o.status IN ('NEW', 'PENDING', 'IN_PROGRESS')
    ), blocked (id) AS (
        SELECT d.task_id
        FROM stopped
        JOIN task_dependencies d ON d.parent_id = stopped.id
        JOIN tasks t ON t.id = d.task_id AND t.status = 'NEW'
        UNION
        SELECT d.task_id
        FROM blocked
        JOIN task_dependencies d ON d.parent_id = blocked.id
        JOIN tasks t ON t.id = d.task_id AND t.status = 'NEW'
    ), reason AS (
        -- one parent per blocked task: a stopped one, else one cancelled here too
        SELECT DISTINCT ON (d.task_id)
               d.task_id AS id, 'parent ' || d.parent_id || ' ' || coalesce(stopped.status, 'CANCELLED') AS error
        FROM task_dependencies d
        JOIN blocked ON blocked.id = d.task_id
        LEFT JOIN stopped ON stopped.id = d.parent_id
        WHERE stopped.id IS NOT NULL OR d.parent_id IN (SELECT id FROM blocked)
        ORDER BY d.task_id, stopped.id IS NULL, d.parent_id
    )
    UPDATE tasks c
    SET status = 'CANCELLED',
        error = reason.error,
        finished_at = now(),
        updated_at = now()
    FROM reason
    WHERE c.id = reason.id
      AND c.status = 'NEW';
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_settle_dependents AFTER UPDATE ON tasks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION settle_dependents();

-- migrate:down

DROP TRIGGER tasks_settle_dependents ON tasks;
DROP FUNCTION settle_dependents();
DROP INDEX tasks_waiting_idx;
DROP TABLE task_dependencies;
ALTER TABLE tasks DROP COLUMN waiting_on;
