-- The attempt succeeded: IN_PROGRESS → COMPLETED with its result. Guarded by
-- the attempt, so a late or duplicate worker cannot overwrite a newer state.
-- A cancel requested while the handler was finishing loses: COMPLETED wins.
-- $1 task id, $2 attempt, $3 worker id, $4 result (jsonb)
UPDATE tasks
SET status = 'COMPLETED',
    result = $4,
    error = NULL,
    finished_at = now(),
    worker_id = NULL,
    lease_expires_at = NULL,
    updated_at = now()
WHERE id = $1
  AND attempts = $2
  AND worker_id = $3
  AND status = 'IN_PROGRESS'
RETURNING id, status;
