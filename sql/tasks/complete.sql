-- Attempts that succeeded: IN_PROGRESS → COMPLETED with their results, for every
-- attempt of one worker that finished together, in one UPDATE. Each row is
-- guarded by its attempt, so a late or duplicate worker cannot overwrite a newer
-- state; an attempt that is no longer ours returns no row. A cancel requested
-- while the handler was finishing loses: COMPLETED wins.
-- Results come as JSON text (text[]), not jsonb[]: in an array parameter a JSON
-- list would be taken for one more array dimension.
-- Plan: see docs/design.md, "Query plans" (the guard is a CASE on purpose).
-- $1 task ids (uuid[]), $2 their attempts (integer[]), $3 their results (JSON
-- text[], NULL for none), $4 worker id
UPDATE tasks t
SET status = 'COMPLETED',
    result = attempt.result::jsonb,
    error = NULL,
    finished_at = now(),
    worker_id = NULL,
    lease_expires_at = NULL,
    updated_at = now()
FROM unnest($1::uuid[], $2::integer[], $3::text[]) AS attempt (task_id, attempts, result)
WHERE t.id = attempt.task_id
  AND t.attempts = attempt.attempts
  AND t.worker_id = $4
  AND CASE t.status WHEN 'IN_PROGRESS' THEN true ELSE false END
RETURNING t.id, t.attempts, t.status;
