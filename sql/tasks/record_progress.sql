-- A running handler's latest progress (throttled by the worker), guarded by the
-- attempt it belongs to, so nothing is written once that attempt has ended. It
-- changes no indexed column (a HOT update when the page has room) and no status
-- (the status triggers record nothing). While some stream is open (a live
-- stream_listeners row), NOTIFY task_progress carries the new value to the
-- streaming API processes: a NOTIFY in this short transaction of its own only
-- orders progress commits among themselves, never the status changes.
-- Returns the task's id when written; no row: the attempt is no longer ours.
-- $1 task id, $2 attempt, $3 worker id, $4 fraction (0..1), $5 message (NULL: none)
WITH updated AS (
    UPDATE tasks
    SET progress_fraction = $4,
        progress_message = $5,
        progress_updated_at = clock_timestamp()
    WHERE id = $1
      AND attempts = $2
      AND worker_id = $3
      AND status = 'IN_PROGRESS'
    RETURNING id, attempts, priority, progress_fraction, progress_message, progress_updated_at
)
SELECT id,
       CASE WHEN EXISTS (SELECT 1 FROM stream_listeners WHERE expires_at > now())
            THEN pg_notify('task_progress', json_build_object(
                'task_id', id, 'attempt', attempts, 'priority', priority,
                'fraction', progress_fraction, 'message', progress_message,
                'updated_at', progress_updated_at)::text)
       END AS notified
FROM updated;
