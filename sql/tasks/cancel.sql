-- Cancel a task in one guarded UPDATE, so racing cancels and state changes
-- resolve in the database: NEW/PENDING become CANCELLED at once; IN_PROGRESS
-- only records the request (the worker holding it stops it and records
-- CANCELLED). Finished and already-cancelled tasks are left alone: no row returns.
-- `from_status` is the status before (for the transition metrics); reading it
-- FOR UPDATE makes it the version this UPDATE changed, even under a race.
-- $1 task id
UPDATE tasks t
SET status = CASE WHEN t.status = 'IN_PROGRESS' THEN t.status ELSE 'CANCELLED' END,
    finished_at = CASE WHEN t.status = 'IN_PROGRESS' THEN NULL ELSE now() END,
    cancel_requested_at = coalesce(t.cancel_requested_at, now()),
    updated_at = now()
FROM (SELECT id, status FROM tasks WHERE id = $1 FOR UPDATE) AS before
WHERE t.id = before.id
  AND t.status IN ('NEW', 'PENDING', 'IN_PROGRESS')
RETURNING t.*, before.status AS from_status;
