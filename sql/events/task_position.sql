-- Where a request waiting for the task's status to change starts: the status
-- and the id of the task's newest event (0: none), in one snapshot. A later
-- change of this task has a larger id: each change holds the task's row lock
-- until it commits, so the task's events commit in id order.
-- $1 task id
SELECT t.status,
       coalesce((SELECT max(e.id) FROM task_events AS e WHERE e.task_id = t.id), 0) AS event_id
FROM tasks AS t
WHERE t.id = $1;
