-- Maintenance: clear a batch of idempotency keys older than the TTL, oldest
-- first. Creates treat such keys as free anyway (tasks/release_idempotency_key);
-- this keeps the unique index small. SKIP LOCKED: never waits for a task a
-- worker is updating.
-- Plan: see docs/design.md, "Query plans".
-- $1 TTL in seconds, $2 batch size
WITH expired AS (
    SELECT id
    FROM tasks
    WHERE idempotency_key IS NOT NULL
      AND created_at <= now() - make_interval(secs => $1)
    ORDER BY created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), cleared AS (
    UPDATE tasks t
    SET idempotency_key = NULL,
        request_hash = NULL
    FROM expired
    WHERE t.id = expired.id
    RETURNING 1
)
SELECT count(*) FROM cleared;
