-- Start an attempt: NEW/PENDING → IN_PROGRESS with a lease, in one guarded
-- UPDATE so two workers with the same message cannot both win. A message from
-- an older dispatch (a newer outbox row exists for the task) is stale and
-- claims nothing, so a duplicate cannot skip a retry's backoff.
-- $1 task id, $2 outbox id the message came from, $3 worker id, $4 lease seconds
UPDATE tasks
SET status = 'IN_PROGRESS',
    attempts = attempts + 1,
    started_at = now(),
    worker_id = $3,
    lease_expires_at = now() + make_interval(secs => $4),
    error = NULL,
    updated_at = now()
WHERE id = $1
  AND status IN ('NEW', 'PENDING')
  AND attempts < max_attempts
  AND NOT EXISTS (SELECT 1 FROM outbox WHERE task_id = $1 AND id > $2)
RETURNING *;
