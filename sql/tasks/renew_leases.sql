-- Heartbeat: extend the leases of the attempts this worker is running, and
-- report any cancel requests (a fallback for a missed NOTIFY).
-- $1 task ids (uuid[]), $2 worker id, $3 lease seconds
UPDATE tasks
SET lease_expires_at = now() + make_interval(secs => $3)
WHERE id = ANY ($1)
  AND worker_id = $2
  AND status = 'IN_PROGRESS'
RETURNING id, cancel_requested_at;
