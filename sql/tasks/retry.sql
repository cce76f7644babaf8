-- Run a FAILED or CANCELLED task again: back to PENDING with a fresh attempt
-- budget and a new outbox row, in one guarded statement (the history event
-- comes from the trigger), due at once or at `run_at` if that is still ahead.
-- Any other status: no row returns. The older outbox rows' messages are stale
-- from now on (tasks/claim takes only the newest).
-- `from_status` is the status before, read FOR UPDATE so it is the version
-- this UPDATE changed.
-- $1 task id
WITH retried AS (
    UPDATE tasks t
    SET status = 'PENDING',
        attempts = 0,
        result = NULL,
        error = NULL,
        finished_at = NULL,
        cancel_requested_at = NULL,
        updated_at = now()
    FROM (SELECT id, status FROM tasks WHERE id = $1 FOR UPDATE) AS before
    WHERE t.id = before.id
      AND t.status IN ('FAILED', 'CANCELLED')
    RETURNING t.*, before.status AS from_status
), dispatch AS (
    INSERT INTO outbox (task_id, priority, available_at)
    SELECT id, priority, greatest(run_at, now()) FROM retried
)
SELECT * FROM retried;
