-- Record one attempt and settle the delivery: delivered on a 2xx, failed when
-- the next try would fall past the retry window, else due again after $7
-- seconds. The update is guarded by the attempt: after a lease ran out and
-- another dispatcher claimed the row, only the newer attempt settles it; the
-- history row is written either way. Returns the outcome.
-- $1 delivery id, $2 attempt, $3 started at, $4 duration seconds,
-- $5 HTTP status code (NULL = none), $6 error (NULL = none), $7 retry delay seconds,
-- $8 retry window seconds, $9 delivered (boolean)
WITH settled AS (
    UPDATE callback_deliveries
    SET status = CASE
            WHEN $9 THEN 'delivered'
            WHEN now() + make_interval(secs => $7) > created_at + make_interval(secs => $8) THEN 'failed'
            ELSE 'pending'
        END,
        next_attempt_at = now() + make_interval(secs => $7),
        finished_at = CASE
            WHEN $9 OR now() + make_interval(secs => $7) > created_at + make_interval(secs => $8) THEN now()
        END,
        last_status_code = $5,
        last_error = $6
    WHERE id = $1
      AND attempts = $2
      AND status = 'pending'
    RETURNING CASE status WHEN 'pending' THEN 'retry' ELSE status END AS outcome
), history AS (
    INSERT INTO callback_attempts (delivery_id, attempt, started_at, duration_seconds, status_code, error, outcome)
    SELECT $1, $2, $3, $4, $5, $6, coalesce((SELECT outcome FROM settled), 'retry')
)
SELECT outcome FROM settled;
