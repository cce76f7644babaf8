-- The worker stopped a running attempt because a cancel was requested.
-- $1 task id, $2 attempt, $3 worker id
UPDATE tasks
SET status = 'CANCELLED',
    finished_at = now(),
    worker_id = NULL,
    lease_expires_at = NULL,
    updated_at = now()
WHERE id = $1
  AND attempts = $2
  AND worker_id = $3
  AND status = 'IN_PROGRESS'
RETURNING id, status;
