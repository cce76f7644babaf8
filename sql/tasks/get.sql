-- One task by id, with its parents (`depends_on`) and its first 1,000
-- children (`dependents`), by id.
-- $1 task id
SELECT t.*,
       ARRAY(SELECT parent_id FROM task_dependencies WHERE task_id = t.id ORDER BY parent_id) AS depends_on,
       ARRAY(SELECT task_id FROM task_dependencies WHERE parent_id = t.id ORDER BY task_id LIMIT 1000) AS dependents
FROM tasks t
WHERE t.id = $1;
