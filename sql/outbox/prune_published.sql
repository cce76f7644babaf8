-- Retention: delete a batch of outbox rows published more than $1 seconds ago.
-- Unpublished rows always stay. Dropping an old row never lets a stale message
-- claim a task early: tasks/claim refuses a message only while a newer row for
-- its task exists, and the newest rows are the last to go.
-- Plan: see docs/design.md, "Query plans".
-- $1 seconds to keep published rows, $2 batch size
WITH old AS (
    SELECT id
    FROM outbox
    WHERE published_at < now() - make_interval(secs => $1)
    ORDER BY published_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), deleted AS (
    DELETE FROM outbox o
    USING old
    WHERE o.id = old.id
    RETURNING 1
)
SELECT count(*) FROM deleted;
