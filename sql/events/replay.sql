-- Recorded status changes after event $1 that match a stream's filters,
-- oldest first, in the stream's event shape: a resumed stream's replay, or
-- every stream's catch-up after the LISTEN connection was lost. The priority and queue
-- are the task's current ones.
-- Plan: see docs/design.md, "Query plans".
-- $1 after this event id, $2 task id (NULL = any), $3 new status (NULL = any),
-- $4 task priority (NULL = any), $5 at most this many rows, $6 task queue (NULL = any)
SELECT e.id, e.task_id, e.from_status, e.status, t.priority, t.queue, e.attempt, e.created_at
FROM task_events AS e
JOIN tasks AS t ON t.id = e.task_id
WHERE e.id > $1
  AND ($2::uuid IS NULL OR e.task_id = $2)
  AND ($3::text IS NULL OR e.status = $3)
  AND ($4::text IS NULL OR t.priority = $4)
  AND ($6::text IS NULL OR t.queue = $6)
ORDER BY e.id
LIMIT $5;
