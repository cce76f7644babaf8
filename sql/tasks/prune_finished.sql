-- Retention: delete a batch of tasks that finished more than $1 days ago; their
-- events, outbox rows and task_texts go with them (ON DELETE CASCADE) and the counters
-- follow (trigger). SKIP LOCKED: never waits for a task being retried; the
-- locks last one small batch.
-- Plan: see docs/design.md, "Query plans" (why created_at is compared too).
-- $1 retention in days (> 0), $2 batch size
WITH old AS (
    SELECT id
    FROM tasks
    WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED')
      AND created_at < now() - make_interval(days => $1)
      AND finished_at < now() - make_interval(days => $1)
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), deleted AS (
    DELETE FROM tasks t
    USING old
    WHERE t.id = old.id
    RETURNING 1
)
SELECT count(*) FROM deleted;
