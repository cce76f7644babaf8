-- A task's deliveries and their attempts, oldest first; a delivery not yet tried
-- comes once with NULL attempt columns.
-- $1 task id
SELECT d.id AS delivery_id, d.task_status, d.url, d.status, d.attempts, d.next_attempt_at,
       d.created_at, d.finished_at,
       a.attempt, a.started_at, a.duration_seconds, a.status_code, a.error, a.outcome
FROM callback_deliveries d
LEFT JOIN callback_attempts a ON a.delivery_id = d.id
WHERE d.task_id = $1
ORDER BY d.created_at, d.id, a.id;
