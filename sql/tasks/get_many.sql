-- Tasks by id, in the order of the ids given; an id without a task is left out.
-- $1 task ids (uuid[])
SELECT t.*
FROM unnest($1::uuid[]) WITH ORDINALITY AS wanted(id, position)
JOIN tasks t USING (id)
ORDER BY wanted.position;
