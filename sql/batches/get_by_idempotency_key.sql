-- The batch an idempotency key still names, to replay or reject a retry. A key
-- older than the TTL has expired: no row, as if it had never been used.
-- $1 idempotency key, $2 TTL in seconds
SELECT *
FROM task_batches
WHERE idempotency_key = $1
  AND created_at > now() - make_interval(secs => $2);
