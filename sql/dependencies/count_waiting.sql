-- How many tasks wait on parents (or, $3 false, do not), with the other list
-- filters, counting no further than $4.
-- $1 statuses (text[] or NULL), $2 priorities (text[] or NULL), $3 waiting
-- (boolean), $4 the most to count
SELECT count(*)
FROM (
    SELECT 1
    FROM tasks
    WHERE ($1::text[] IS NULL OR status = ANY ($1))
      AND ($2::text[] IS NULL OR priority = ANY ($2))
      AND (status = 'NEW' AND waiting_on > 0) = $3
    LIMIT $4
) AS matching;
