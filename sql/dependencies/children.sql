-- The tasks that depend on a task, the first $2 by id.
-- $1 task id, $2 most to list
SELECT ARRAY(SELECT task_id FROM task_dependencies WHERE parent_id = $1 ORDER BY task_id LIMIT $2);
