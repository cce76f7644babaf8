-- Cancel a task in one guarded UPDATE, so racing cancels and state changes
-- resolve in the database: NEW/PENDING become CANCELLED at once; IN_PROGRESS
-- only records the request (the worker holding it stops it and records
-- CANCELLED). Finished and already-cancelled tasks are left alone: no row returns.
-- $1 task id
UPDATE tasks
SET status = CASE WHEN status = 'IN_PROGRESS' THEN status ELSE 'CANCELLED' END,
    finished_at = CASE WHEN status = 'IN_PROGRESS' THEN NULL ELSE now() END,
    cancel_requested_at = coalesce(cancel_requested_at, now()),
    updated_at = now()
WHERE id = $1
  AND status IN ('NEW', 'PENDING', 'IN_PROGRESS')
RETURNING *;
