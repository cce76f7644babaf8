-- A request is about to wait for this task's status to change: until $2
-- seconds from now, a status change sends NOTIFY task_status (trigger
-- tasks_notify_status). Returns the status read under the row lock, after
-- the watch is in place: a change committed before it shows here, any later
-- one notifies, so no change falls in between.
-- $1 task id, $2 seconds to watch
UPDATE tasks
SET watched_until = greatest(watched_until, now() + make_interval(secs => $2))
WHERE id = $1
RETURNING status;
