-- Run a FAILED or CANCELLED task again, and say what happened, in one
-- statement: back to PENDING with a fresh attempt budget and a new outbox row,
-- due at once or at `run_at` if that is still ahead (the history event comes
-- from the trigger); any other status is left alone. A task still waiting on
-- parents goes back to NEW instead, without an outbox row (their completion
-- dispatches it). The descendants its failure cancelled (error "parent <id>
-- FAILED|CANCELLED" naming the task, or a descendant restored here) go back to
-- NEW and wait again; ones a client cancelled stay CANCELLED. Returns the task
-- (no row: no such task) with `changed` (false: the task was left alone, as it
-- is now) and `from_status`, the status before, read FOR UPDATE so it is the
-- version this statement changed. The older outbox rows' messages are stale
-- from now on (tasks/claim takes only the newest).
-- $1 task id
WITH RECURSIVE before AS (
    SELECT * FROM tasks WHERE id = $1 FOR UPDATE
), retried AS (
    UPDATE tasks t
    SET status = CASE WHEN t.waiting_on > 0 THEN 'NEW' ELSE 'PENDING' END,
        attempts = 0,
        result = NULL,
        error = NULL,
        finished_at = NULL,
        cancel_requested_at = NULL,
        updated_at = now()
    FROM before
    WHERE t.id = before.id
      AND t.status IN ('FAILED', 'CANCELLED')
    RETURNING t.*, before.status AS from_status
), dispatch AS (
    INSERT INTO outbox (task_id, priority, available_at)
    SELECT id, priority, greatest(run_at, now()) FROM retried WHERE status = 'PENDING'
), restorable (id) AS (
    SELECT id FROM before WHERE status IN ('FAILED', 'CANCELLED')
    UNION
    SELECT d.task_id
    FROM restorable r
    JOIN task_dependencies d ON d.parent_id = r.id
    JOIN tasks c ON c.id = d.task_id
    WHERE c.status = 'CANCELLED'
      AND c.error IN ('parent ' || r.id || ' FAILED', 'parent ' || r.id || ' CANCELLED')
), restored AS (
    UPDATE tasks c
    SET status = 'NEW',  -- waiting_on > 0: the parent that cancelled it is not COMPLETED
        attempts = 0,
        error = NULL,
        finished_at = NULL,
        cancel_requested_at = NULL,
        updated_at = now()
    FROM restorable r
    WHERE c.id = r.id
      AND c.id <> $1
)
SELECT *, true AS changed FROM retried
UNION ALL
SELECT before.*, before.status AS from_status, false AS changed
FROM before
WHERE before.id NOT IN (SELECT id FROM retried);
