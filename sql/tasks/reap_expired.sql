-- Rescue attempts whose worker stopped renewing its lease (it died): back to
-- PENDING with a fresh outbox row, or FAILED when no attempts remain, or
-- CANCELLED when a cancel was requested. SKIP LOCKED: reapers never block
-- each other or a worker finishing the same task.
-- $1 batch size
WITH expired AS (
    SELECT id
    FROM tasks
    WHERE status = 'IN_PROGRESS'
      AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), rescued AS (
    UPDATE tasks t
    SET status = CASE
            WHEN t.cancel_requested_at IS NOT NULL THEN 'CANCELLED'
            WHEN t.attempts < t.max_attempts THEN 'PENDING'
            ELSE 'FAILED' END,
        finished_at = CASE
            WHEN t.cancel_requested_at IS NULL AND t.attempts < t.max_attempts THEN NULL
            ELSE now() END,
        error = CASE WHEN t.cancel_requested_at IS NULL
            THEN 'lease expired: the worker running attempt ' || t.attempts || ' stopped responding'
            END,
        worker_id = NULL,
        lease_expires_at = NULL,
        updated_at = now()
    FROM expired
    WHERE t.id = expired.id
    RETURNING t.id, t.status, t.priority, t.attempts
), redispatch AS (
    INSERT INTO outbox (task_id, priority)
    SELECT id, priority FROM rescued WHERE status = 'PENDING'
)
SELECT id, status, attempts FROM rescued;
