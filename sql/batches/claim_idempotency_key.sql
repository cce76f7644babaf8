-- Take a batch create's Idempotency-Key, before its tasks are written. A request
-- racing one that holds the key waits here until that one commits or rolls back.
-- With the key already taken, nothing is written and no row returns.
-- $1 idempotency key, $2 request hash
INSERT INTO task_batches (idempotency_key, request_hash)
VALUES ($1, $2)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING *;
