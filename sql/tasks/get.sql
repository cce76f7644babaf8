-- One task by id.
-- $1 task id
SELECT * FROM tasks WHERE id = $1;
