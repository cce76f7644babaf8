-- Cancel a task, and say what happened, in one statement: NEW/PENDING become
-- CANCELLED at once; IN_PROGRESS only records the request (the worker holding
-- it stops it and records CANCELLED); any other status is left alone. Returns
-- the task (no row: no such task) with `changed` (false: the task was left
-- alone, as it is now) and `from_status`, the status before. The row is read
-- FOR UPDATE first, so racing cancels and state changes resolve in the
-- database and `from_status` is the version this statement changed.
-- $1 task id
WITH before AS (
    SELECT * FROM tasks WHERE id = $1 FOR UPDATE
), cancelled AS (
    UPDATE tasks t
    SET status = CASE t.status WHEN 'IN_PROGRESS' THEN t.status ELSE 'CANCELLED' END,
        finished_at = CASE t.status WHEN 'IN_PROGRESS' THEN NULL ELSE now() END,
        cancel_requested_at = coalesce(t.cancel_requested_at, now()),
        updated_at = now()
    FROM before
    WHERE t.id = before.id
      AND t.status IN ('NEW', 'PENDING', 'IN_PROGRESS')
    RETURNING t.*, before.status AS from_status
)
SELECT *, true AS changed FROM cancelled
UNION ALL
SELECT before.*, before.status AS from_status, false AS changed
FROM before
WHERE before.id NOT IN (SELECT id FROM cancelled);
