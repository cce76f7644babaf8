-- Claim a batch of due, unpublished outbox rows for this transaction, and mark
-- their tasks PENDING. SKIP LOCKED lets any number of dispatchers share the
-- outbox; the row locks hold until the publishing transaction commits, so a
-- row is published once per claim. A task already taken or cancelled keeps
-- its status (the worker skips such messages). `dispatched` says whether this
-- claim moved the row's task from NEW to PENDING (for the transition metrics).
-- $1 batch size
WITH due AS (
    SELECT id, task_id, priority, available_at
    FROM outbox
    WHERE published_at IS NULL
      AND available_at <= now()
    ORDER BY available_at, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), dispatched AS (
    UPDATE tasks
    SET status = 'PENDING',
        updated_at = now()
    WHERE id IN (SELECT task_id FROM due)
      AND status = 'NEW'
    RETURNING id
)
SELECT due.id, due.task_id, due.priority, dispatched.id IS NOT NULL AS dispatched
FROM due
LEFT JOIN dispatched ON dispatched.id = due.task_id
ORDER BY due.available_at, due.id;
