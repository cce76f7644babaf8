-- How many tasks match a text search or a schedule (and the other filters),
-- counting no further than $4: an exact count of a common word, or of a
-- frequent schedule's tasks, over millions of rows would cost more than the
-- page itself.
-- $1 statuses (text[] or NULL), $2 priorities (text[] or NULL),
-- $3 search text (NULL = none; %, _ and \ match literally), $4 the most to count,
-- $5 schedule id (NULL = any)
SELECT count(*)
FROM (
    SELECT 1
    FROM tasks
    WHERE ($1::text[] IS NULL OR status = ANY ($1))
      AND ($2::text[] IS NULL OR priority = ANY ($2))
      AND ($3::text IS NULL
           OR name ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%'
           OR description ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%')
      AND ($5::uuid IS NULL OR schedule_id = $5)
    LIMIT $4
) AS matching;
