-- Due enabled schedules, oldest tick first, locked until the transaction ends; another
-- dispatcher skips them, and sees them advanced once this one commits. Each row carries
-- its last task's status (for overlap = 'skip') and the transaction's clock.
-- $1 how many at most
SELECT s.*, t.status AS last_task_status, now() AS now
FROM schedules s
LEFT JOIN tasks t ON t.id = s.last_task_id
WHERE s.enabled AND s.next_run_at <= now()
ORDER BY s.next_run_at
LIMIT $1
FOR UPDATE OF s SKIP LOCKED;
