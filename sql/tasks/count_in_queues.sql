-- How many tasks of the queues $3 match the other filters, counting no further
-- than $4: the trigger-kept counters have no queue, and an exact count of a
-- busy queue over millions of rows would cost more than the page itself.
-- $1 statuses (text[] or NULL), $2 priorities (text[] or NULL),
-- $3 queues (text[]), $4 the most to count
SELECT count(*)
FROM (
    SELECT 1
    FROM tasks
    WHERE queue = ANY ($3)
      AND ($1::text[] IS NULL OR status = ANY ($1))
      AND ($2::text[] IS NULL OR priority = ANY ($2))
    LIMIT $4
) AS matching;
