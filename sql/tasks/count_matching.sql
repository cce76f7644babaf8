-- How many tasks match a text search (and the other filters), counting no
-- further than $4: an exact count of a common word over millions of rows
-- would cost more than the page itself.
-- $1 statuses (text[] or NULL), $2 priorities (text[] or NULL),
-- $3 search text (%, _ and \ match literally), $4 the most to count,
-- $5 queues (text[] or NULL)
SELECT count(*)
FROM (
    SELECT 1
    FROM tasks
    WHERE ($1::text[] IS NULL OR status = ANY ($1))
      AND ($2::text[] IS NULL OR priority = ANY ($2))
      AND ($5::text[] IS NULL OR queue = ANY ($5))
      AND (name ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%'
           OR description ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%')
    LIMIT $4
) AS matching;
