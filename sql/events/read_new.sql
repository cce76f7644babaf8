-- The events a streaming API process has not delivered yet, oldest first, in
-- the stream's event shape: those after its cursor $1, and those among $2,
-- ids below the cursor it skipped because they were not visible yet (event ids
-- are assigned before commit, so they commit out of order). The priority and
-- queue are the task's current ones, looked up by primary key for each event:
-- planned as a join, a read of 500 rows at most hashed the whole tasks table
-- on every read, though a read usually holds a few dozen events. Without $4
-- they are NULL and the tasks are not read: only streams filter on them.
-- Plan: see docs/design.md, "Query plans".
-- $1 after this event id, $2 gap ids (bigint[], below the cursor), $3 at most this many rows,
-- $4 whether to read each event's task for its priority and queue
SELECT e.id, e.task_id, e.from_status, e.status, t.priority, t.queue, e.attempt, e.created_at
FROM (
    (SELECT g.id, g.task_id, g.from_status, g.status, g.attempt, g.created_at
     FROM task_events AS g
     WHERE g.id = ANY($2::bigint[]) AND g.id <= $1)
    UNION ALL
    (SELECT n.id, n.task_id, n.from_status, n.status, n.attempt, n.created_at
     FROM task_events AS n
     WHERE n.id > $1
     ORDER BY n.id
     LIMIT $3)
) AS e
LEFT JOIN LATERAL (
    SELECT priority, queue FROM tasks WHERE $4::boolean AND tasks.id = e.task_id LIMIT 1
) AS t ON true
ORDER BY e.id
LIMIT $3;
