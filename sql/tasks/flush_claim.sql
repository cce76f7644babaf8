-- Whether attempt $2 of task $1 was claimed (its count of attempts reached it),
-- read in a transaction that waits for the WAL flush: asking for the current
-- transaction's id gives it one, so its commit writes a record and
-- (synchronous_commit on, as on every pool but the dispatcher's claim
-- connection) waits until the WAL is flushed through it, and so through every
-- earlier commit. A worker's claim committed without waiting is then durable; if
-- it is not there, a database crash lost it (taskservice/worker.py,
-- ack_once_flushed).
-- $1 task id, $2 the attempt its claim started
SELECT pg_current_xact_id() IS NOT NULL
       AND EXISTS (SELECT 1 FROM tasks WHERE id = $1 AND attempts >= $2) AS claimed;
