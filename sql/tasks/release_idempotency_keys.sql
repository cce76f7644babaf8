-- Free the expired ones among many idempotency keys so a batch create can take
-- them (tasks/release_idempotency_key for many keys). A key younger than the
-- TTL is never touched.
-- $1 idempotency keys (text[]), $2 TTL in seconds
UPDATE tasks
SET idempotency_key = NULL,
    request_hash = NULL
WHERE idempotency_key = ANY($1::text[])
  AND created_at <= now() - make_interval(secs => $2);
