-- Make a worker's claim committed without waiting for the WAL flush durable,
-- if it is still there: attempt $2 of task $1, running under worker $3. The row
-- is written (its lease set to what it is) so that this transaction writes WAL:
-- only then does its commit (synchronous_commit on, as on every pool but the
-- dispatcher's claim connection) wait until the WAL is flushed through it, and so
-- through every earlier commit, the claim's included. A transaction id alone
-- writes none, and its commit does not wait. No row: the claim is not there (a
-- database crash lost it) or the attempt has moved on (taskservice/worker.py,
-- ack_once_flushed, sends the message back to the queue either way).
-- $1 task id, $2 the attempt its claim started, $3 worker id
UPDATE tasks
SET lease_expires_at = lease_expires_at
WHERE id = $1
  AND attempts = $2
  AND worker_id = $3
  AND CASE status WHEN 'IN_PROGRESS' THEN true ELSE false END
RETURNING true AS claimed;
