-- Tell the streaming API processes (LISTEN task_events) that status changes
-- were committed: sent by a writing process after its commits, paced,
-- never inside the writing transaction (a NOTIFY there serialises commits).
-- Only while some stream or status wait is open (a live stream_listeners row); otherwise the
-- statement does nothing. The payload names the sending process: its own event feed, already
-- woken in-process, skips it.
-- Plan: see docs/design.md, "Query plans".
-- $1 the sending process's id ('' when it has no event feed)
SELECT pg_notify('task_events', $1)
WHERE EXISTS (SELECT 1 FROM stream_listeners WHERE expires_at > now());
