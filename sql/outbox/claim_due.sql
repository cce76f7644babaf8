-- Claim a batch of due, unpublished outbox rows for this transaction, and mark
-- their tasks PENDING. SKIP LOCKED lets any number of dispatchers share the
-- outbox; the row locks hold until the publishing transaction commits, so a
-- row is published once per claim. A task already taken or cancelled keeps
-- its status (the worker skips such messages).
-- $1 batch size
WITH due AS (
    SELECT id, task_id, priority
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
)
SELECT id, task_id, priority FROM due;
