-- The parents a task depends on, by id.
-- $1 task id
SELECT ARRAY(SELECT parent_id FROM task_dependencies WHERE task_id = $1 ORDER BY parent_id);
