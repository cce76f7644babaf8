-- Tell the streaming API processes (LISTEN task_events) that status changes
-- were committed: sent by a writing process after its commits, coalesced,
-- never inside the writing transaction (a NOTIFY there serialises commits).
-- Only while some stream is open: the EXISTS is a one-time filter, so with no
-- live stream_listeners row pg_notify is not called, and the statement
-- writes nothing and takes no transaction id.
-- (no parameters)
SELECT pg_notify('task_events', '')
WHERE EXISTS (SELECT 1 FROM stream_listeners WHERE expires_at > now());
