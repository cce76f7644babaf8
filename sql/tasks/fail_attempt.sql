-- The attempt raised or timed out: back to PENDING with a delayed outbox row
-- while attempts remain and the error is retryable, else FAILED. Guarded by
-- the attempt it owns.
-- $1 task id, $2 attempt, $3 worker id, $4 error text, $5 retry delay in seconds,
-- $6 retryable (false: fail now, e.g. no handler for the kind)
WITH failed AS (
    UPDATE tasks
    SET status = CASE WHEN $6 AND attempts < max_attempts THEN 'PENDING' ELSE 'FAILED' END,
        finished_at = CASE WHEN $6 AND attempts < max_attempts THEN NULL ELSE now() END,
        error = $4,
        worker_id = NULL,
        lease_expires_at = NULL,
        updated_at = now()
    WHERE id = $1
      AND attempts = $2
      AND worker_id = $3
      AND status = 'IN_PROGRESS'
    RETURNING id, status, priority
), retry AS (
    INSERT INTO outbox (task_id, priority, available_at)
    SELECT id, priority, now() + make_interval(secs => $5)
    FROM failed
    WHERE status = 'PENDING'
)
SELECT id, status FROM failed;
