-- This API process has open streams: (re)write its stream_listeners row so
-- status changes NOTIFY task_events for the next $2 seconds. Returns the
-- newest event id so far, where a stream's catch-up after a lost LISTEN
-- connection starts reading.
-- $1 listener id (one per API process), $2 seconds until the row expires
INSERT INTO stream_listeners AS l (listener, expires_at)
VALUES ($1, now() + make_interval(secs => $2))
ON CONFLICT (listener) DO UPDATE SET expires_at = excluded.expires_at
RETURNING (SELECT coalesce(max(id), 0) FROM task_events) AS latest_id;
