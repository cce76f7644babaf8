-- Lease a batch of due, pending deliveries to this dispatcher for $2 seconds
-- (past the request timeout), counting the attempt, in one short transaction.
-- SKIP LOCKED lets any number of dispatchers share them; the POST happens with
-- no transaction open. A dispatcher that dies mid-request lets its rows come due
-- again when the lease runs out (at-least-once).
-- $1 batch size, $2 lease seconds
WITH due AS (
    SELECT id
    FROM callback_deliveries
    WHERE status = 'pending'
      AND next_attempt_at <= now()
    ORDER BY next_attempt_at, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE callback_deliveries d
SET attempts = d.attempts + 1,
    next_attempt_at = now() + make_interval(secs => $2)
FROM due
WHERE d.id = due.id
RETURNING d.id, d.task_id, d.url, d.attempts, d.created_at;
