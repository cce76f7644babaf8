-- Link tasks just created to the parents they name, in the creating transaction.
-- The parents are locked FOR SHARE, so a parent's completion either commits
-- before (and is counted here) or waits and then finds the links (its trigger
-- counts the child down). Each child's waiting_on (set at create to the number
-- of parents) goes down by its COMPLETED parents, and a child left with none
-- waiting gets its outbox row; a child with a FAILED or CANCELLED parent is
-- CANCELLED at once, naming it (the trigger then cancels that child's own
-- children). Returns the parent ids that name no task (the caller rolls back).
-- $1 child task ids (uuid[]), $2 parent ids (uuid[]): one link per position
WITH link AS (
    SELECT DISTINCT task_id, parent_id
    FROM unnest($1::uuid[], $2::uuid[]) AS l (task_id, parent_id)
), parent AS (
    SELECT id, status
    FROM tasks
    WHERE id IN (SELECT parent_id FROM link)
    ORDER BY id  -- one lock order: no deadlock
    FOR SHARE
), linked AS (
    INSERT INTO task_dependencies (task_id, parent_id)
    SELECT link.task_id, link.parent_id
    FROM link
    JOIN parent ON parent.id = link.parent_id
), settled AS (
    UPDATE tasks c
    SET waiting_on = c.waiting_on - found.completed,
        status = CASE WHEN found.stopped IS NULL THEN c.status ELSE 'CANCELLED' END,
        error = coalesce(found.stopped, c.error),
        finished_at = CASE WHEN found.stopped IS NULL THEN c.finished_at ELSE now() END
    FROM (SELECT link.task_id,
                 count(*) FILTER (WHERE parent.status = 'COMPLETED') AS completed,
                 min('parent ' || parent.id || ' ' || parent.status)
                     FILTER (WHERE parent.status IN ('FAILED', 'CANCELLED')) AS stopped
          FROM link
          JOIN parent ON parent.id = link.parent_id
          GROUP BY link.task_id) AS found
    WHERE c.id = found.task_id
      AND c.status = 'NEW'
    RETURNING c.id, c.priority, c.run_at, c.status, c.waiting_on
), dispatch AS (
    INSERT INTO outbox (task_id, priority, available_at)
    SELECT id, priority, coalesce(run_at, now())
    FROM settled
    WHERE status = 'NEW' AND waiting_on = 0
)
SELECT DISTINCT parent_id
FROM link
WHERE parent_id NOT IN (SELECT id FROM parent);
