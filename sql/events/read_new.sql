-- The events a streaming API process has not delivered yet, oldest first, in
-- the stream's event shape: those after its cursor $1, and those among $2,
-- ids it skipped because they were not visible yet (event ids are assigned
-- before commit, so they commit out of order). The priority and queue are the task's
-- current ones.
-- Plan: see docs/design.md, "Query plans".
-- $1 after this event id, $2 gap ids (bigint[]), $3 at most this many rows
SELECT e.id, e.task_id, e.from_status, e.status, t.priority, t.queue, e.attempt, e.created_at
FROM task_events AS e
JOIN tasks AS t ON t.id = e.task_id
WHERE e.id > $1 OR e.id = ANY($2::bigint[])
ORDER BY e.id
LIMIT $3;
