-- A stopping worker returns an attempt it interrupted: the attempt does not
-- count, and a fresh outbox row lets another worker take the task (unless a
-- cancel was requested meanwhile, which then wins).
-- $1 task id, $2 attempt, $3 worker id
WITH returned AS (
    UPDATE tasks
    SET status = CASE WHEN cancel_requested_at IS NULL THEN 'PENDING' ELSE 'CANCELLED' END,
        finished_at = CASE WHEN cancel_requested_at IS NULL THEN NULL ELSE now() END,
        attempts = attempts - 1,
        worker_id = NULL,
        lease_expires_at = NULL,
        updated_at = now()
    WHERE id = $1
      AND attempts = $2
      AND worker_id = $3
      AND status = 'IN_PROGRESS'
    RETURNING id, status, priority
), redispatch AS (
    INSERT INTO outbox (task_id, priority)
    SELECT id, priority FROM returned WHERE status = 'PENDING'
)
SELECT id, status FROM returned;
