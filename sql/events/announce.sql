-- Tell the streaming API processes (LISTEN task_events) that status changes
-- were committed: sent by a writing process after its commits, coalesced,
-- never inside the writing transaction (a NOTIFY there serialises commits).
-- Only while some stream or status wait is open (a live stream_listeners row); otherwise the
-- statement does nothing.
-- Plan: see docs/design.md, "Query plans".
-- (no parameters)
SELECT pg_notify('task_events', '')
WHERE EXISTS (SELECT 1 FROM stream_listeners WHERE expires_at > now());
