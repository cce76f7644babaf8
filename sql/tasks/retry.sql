-- Run a FAILED or CANCELLED task again, and say what happened, in one
-- statement: back to PENDING with a fresh attempt budget and a new outbox row,
-- due at once or at `run_at` if that is still ahead (the history event comes
-- from the trigger); any other status is left alone. Returns the task (no row:
-- no such task) with `changed` (false: the task was left alone, as it is now)
-- and `from_status`, the status before, read FOR UPDATE so it is the version
-- this statement changed. The older outbox rows' messages are stale from now
-- on (tasks/claim takes only the newest).
-- $1 task id
WITH before AS (
    SELECT * FROM tasks WHERE id = $1 FOR UPDATE
), retried AS (
    UPDATE tasks t
    SET status = 'PENDING',
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
    SELECT id, priority, greatest(run_at, now()) FROM retried
)
SELECT *, true AS changed FROM retried
UNION ALL
SELECT before.*, before.status AS from_status, false AS changed
FROM before
WHERE before.id NOT IN (SELECT id FROM retried);
