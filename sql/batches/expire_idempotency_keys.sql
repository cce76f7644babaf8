-- Maintenance: delete a batch of batch idempotency keys older than the TTL,
-- oldest first (creates treat them as free anyway, batches/release_idempotency_key).
-- SKIP LOCKED: never waits for a batch create that is freeing one.
-- $1 TTL in seconds, $2 batch size
WITH expired AS (
    SELECT id
    FROM task_batches
    WHERE created_at <= now() - make_interval(secs => $1)
    ORDER BY created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), deleted AS (
    DELETE FROM task_batches b
    USING expired
    WHERE b.id = expired.id
    RETURNING 1
)
SELECT count(*) FROM deleted;
