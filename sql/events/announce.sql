-- Tell the streaming API processes (LISTEN task_events) that status changes
-- were committed: sent by a writing process after its commits, paced, not
-- inside the writing transaction (a NOTIFY there serialises commits; only an
-- idle worker's completion announces itself, tasks/complete.sql).
-- Only while some stream or status wait is open in another process (a live
-- stream_listeners row that is not the sender's: an API process's own event feed
-- is woken in-process); otherwise the statement does nothing. The payload names
-- the sending process, so that its own feed skips the notification it hears,
-- then, after a space, the tasks among the changes that are now COMPLETED, if
-- any: a status no task leaves, so a request waiting for one of them is answered
-- at once, without the feed's read (taskservice/api/status_waits.py).
-- Plan: see docs/design.md, "Query plans".
-- $1 the sending process's id, its event feed's listener ('' when it has no event feed),
-- $2 the completed tasks' ids, hex without dashes, comma-separated ('' for none)
SELECT pg_notify('task_events', $1 || CASE WHEN $2 = '' THEN '' ELSE ' ' || $2 END)
WHERE EXISTS (SELECT 1 FROM stream_listeners
              WHERE expires_at > now()
                AND listener IS DISTINCT FROM nullif($1, '')::uuid);
