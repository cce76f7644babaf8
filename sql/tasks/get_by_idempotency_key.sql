-- The task first created with this idempotency key, to replay or reject a retry.
-- $1 idempotency key
SELECT * FROM tasks WHERE idempotency_key = $1;
