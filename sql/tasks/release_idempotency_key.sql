-- Free an expired idempotency key so a new create can take it. Guarded by the
-- age: requests racing here free it once (the others find the key gone after
-- the row lock), and a key younger than the TTL is never touched.
-- $1 idempotency key, $2 TTL in seconds
UPDATE tasks
SET idempotency_key = NULL,
    request_hash = NULL
WHERE idempotency_key = $1
  AND created_at <= now() - make_interval(secs => $2);
