-- One schedule by id, with the status of its last task (NULL: none, or pruned).
-- $1 schedule id
SELECT s.*, t.status AS last_task_status
FROM schedules s
LEFT JOIN tasks t ON t.id = s.last_task_id
WHERE s.id = $1;
