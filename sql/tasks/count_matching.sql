-- How many tasks are in these queues, of a schedule or waiting on parents (and the
-- other filters), counting no further than $3: the trigger-kept counters know none
-- of these, and an exact count of a busy queue or a frequent schedule's tasks over
-- millions of rows would cost more than the page itself. (A text search has its own
-- count, search_count.sql.)
-- $1 statuses (text[] or NULL), $2 priorities (text[] or NULL), $3 the most to count,
-- $4 queues (text[] or NULL), $5 schedule id (NULL = any),
-- $6 waiting on parents (NULL = either; true: NEW with waiting_on > 0)
SELECT count(*)
FROM (
    SELECT 1
    FROM tasks
    WHERE ($1::text[] IS NULL OR status = ANY ($1))
      AND ($2::text[] IS NULL OR priority = ANY ($2))
      AND ($4::text[] IS NULL OR queue = ANY ($4))
      AND ($5::uuid IS NULL OR schedule_id = $5)
      AND ($6::boolean IS NULL OR (status = 'NEW' AND waiting_on > 0) = $6)
    LIMIT $3
) AS matching;
