-- A task's status history, oldest first. Every task has at least its NEW event,
-- so no rows means no such task.
-- $1 task id
SELECT id, task_id, from_status, status, attempt, error, created_at
FROM task_events
WHERE task_id = $1
ORDER BY id;
