-- One task by id, with its parents (`depends_on`).
-- $1 task id
SELECT t.*,
       ARRAY(SELECT parent_id FROM task_dependencies WHERE task_id = t.id ORDER BY parent_id) AS depends_on
FROM tasks t
WHERE t.id = $1;
