-- Attempts that succeeded: IN_PROGRESS → COMPLETED with their results, for every
-- attempt of one worker that finished together, in one UPDATE. Each row is
-- guarded by its attempt, so a late or duplicate worker cannot overwrite a newer
-- state; an attempt that is no longer ours returns no row. A cancel requested
-- while the handler was finishing loses: COMPLETED wins.
-- Results come as JSON text (text[]), not jsonb[]: in an array parameter a JSON
-- list would be taken for one more array dimension.
-- With $5, an idle worker's completions are announced to the streaming API
-- processes by this statement's own commit, as events/announce.sql would announce
-- them after it (same condition, same payload), a round trip sooner; `announced`
-- says whether it was. A NOTIFY in a writing transaction makes commits that
-- notify go one at a time, so only an idle worker asks (taskservice/wakeups.py).
-- Plan: see docs/design.md, "Query plans" (the guard is a CASE on purpose).
-- $1 task ids (uuid[]), $2 their attempts (integer[]), $3 their results (JSON
-- text[], NULL for none), $4 worker id, $5 the announcement's sender ('' for a
-- process with no event feed) or NULL: no announcement here
WITH completed AS (
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
    RETURNING t.id, t.attempts, t.status
), announcement AS (
    SELECT pg_notify('task_events', $5::text || ' ' || string_agg(replace(completed.id::text, '-', ''), ','))
    FROM completed
    WHERE $5 IS NOT NULL
      AND EXISTS (SELECT 1 FROM stream_listeners
                  WHERE expires_at > now()
                    AND listener IS DISTINCT FROM nullif($5, '')::uuid)
    HAVING count(*) > 0
)
SELECT completed.*, EXISTS (SELECT 1 FROM announcement) AS announced
FROM completed;
