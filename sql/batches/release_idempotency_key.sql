-- Free an expired batch idempotency key so a new batch can take it. Guarded by
-- the age: a key younger than the TTL is never touched.
-- $1 idempotency key, $2 TTL in seconds
DELETE FROM task_batches
WHERE idempotency_key = $1
  AND created_at <= now() - make_interval(secs => $2);
