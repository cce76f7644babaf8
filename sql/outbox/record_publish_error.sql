-- A publish failed (broker down, message returned): keep the rows, note why,
-- and retry them after a delay rather than in a tight loop.
-- $1 outbox ids (bigint[]), $2 error text, $3 retry delay in seconds
UPDATE outbox
SET publish_attempts = publish_attempts + 1,
    last_error = $2,
    available_at = now() + make_interval(secs => $3)
WHERE id = ANY ($1)
  AND published_at IS NULL;
