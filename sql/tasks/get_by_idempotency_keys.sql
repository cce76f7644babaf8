-- The tasks unexpired idempotency keys name (tasks/get_by_idempotency_key for
-- many keys); a key naming no task, or an expired one, has no row.
-- $1 idempotency keys (text[]), $2 TTL in seconds
SELECT *
FROM tasks
WHERE idempotency_key = ANY($1::text[])
  AND created_at > now() - make_interval(secs => $2);
