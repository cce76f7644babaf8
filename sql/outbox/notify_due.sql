-- Wake the dispatchers (LISTEN outbox_due). Sent after the rows are committed,
-- never inside the writing transaction: a NOTIFY serialises commits.
-- The payload names the sending process: its own dispatcher, already woken
-- in-process, skips it.
-- $1 the sending process's id ('' when no dispatcher runs in it)
SELECT pg_notify('outbox_due', $1);
