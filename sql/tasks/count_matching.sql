-- How many tasks match a text search, queues, a schedule or waiting on parents
-- (and the other filters), counting no further than $4: the trigger-kept
-- counters know none of these, and an exact count of a common word, a busy queue
-- or a frequent schedule's tasks over millions of rows would cost more than the
-- page itself.
-- $1 statuses (text[] or NULL), $2 priorities (text[] or NULL),
-- $3 search text (NULL = none; %, _ and \ match literally), $4 the most to count,
-- $5 queues (text[] or NULL), $6 schedule id (NULL = any),
-- $7 waiting on parents (NULL = either; true: NEW with waiting_on > 0)
SELECT count(*)
FROM (
    SELECT 1
    FROM tasks
    WHERE ($1::text[] IS NULL OR status = ANY ($1))
      AND ($2::text[] IS NULL OR priority = ANY ($2))
      AND ($5::text[] IS NULL OR queue = ANY ($5))
      AND ($3::text IS NULL
           OR name ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%'
           OR description ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%')
      AND ($6::uuid IS NULL OR schedule_id = $6)
      AND ($7::boolean IS NULL OR (status = 'NEW' AND waiting_on > 0) = $7)
    LIMIT $4
) AS matching;
