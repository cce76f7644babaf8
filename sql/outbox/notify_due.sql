-- Wake the dispatchers (LISTEN outbox_due). Sent after the rows are committed,
-- never inside the writing transaction: a NOTIFY serialises commits.
-- (no parameters)
SELECT pg_notify('outbox_due', '');
