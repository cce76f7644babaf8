-- Tasks by id, in the order of the ids given, each with its parents
-- (`depends_on`); an id without a task is left out.
-- $1 task ids (uuid[])
SELECT t.*,
       ARRAY(SELECT parent_id FROM task_dependencies d WHERE d.task_id = t.id ORDER BY parent_id) AS depends_on
FROM unnest($1::uuid[]) WITH ORDINALITY AS wanted(id, position)
JOIN tasks t USING (id)
ORDER BY wanted.position;
