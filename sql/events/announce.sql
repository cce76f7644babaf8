-- Tell the streaming API processes (LISTEN task_events) that status changes
-- were committed: sent by a writing process after its commits, paced,
-- never inside the writing transaction (a NOTIFY there serialises commits).
-- Only while some stream or status wait is open in another process (a live
-- stream_listeners row that is not the sender's: an API process's own event feed
-- is woken in-process); otherwise the statement does nothing. The payload names
-- the sending process, so that its own feed skips the notification it hears.
-- Plan: see docs/design.md, "Query plans".
-- $1 the sending process's id, its event feed's listener ('' when it has no event feed)
SELECT pg_notify('task_events', $1)
WHERE EXISTS (SELECT 1 FROM stream_listeners
              WHERE expires_at > now()
                AND listener IS DISTINCT FROM nullif($1, '')::uuid);
