-- One page of schedules, newest first, each with the status of its last task.
-- $1 limit, $2 offset
SELECT s.*, t.status AS last_task_status
FROM schedules s
LEFT JOIN tasks t ON t.id = s.last_task_id
ORDER BY s.created_at DESC, s.id DESC
LIMIT $1 OFFSET $2;
