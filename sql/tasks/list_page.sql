-- One page of tasks, newest first. A NULL filter matches everything; a single
-- status or priority is compared with =, several with = ANY. (A text search
-- has its own query, search_page.sql.)
-- Plan: see docs/design.md, "Query plans" (the shape is chosen for the indexes).
-- $1 statuses (text[] or NULL), $2 priorities (text[] or NULL), $3 limit, $4 offset
WITH page AS (
    SELECT id, created_at
    FROM tasks
    WHERE ($1::text[] IS NULL
           OR (cardinality($1) = 1 AND status = $1[1])
           OR (cardinality($1) > 1 AND status = ANY ($1)))
      AND ($2::text[] IS NULL
           OR (cardinality($2) = 1 AND priority = $2[1])
           OR (cardinality($2) > 1 AND priority = ANY ($2)))
    ORDER BY created_at DESC, id DESC
    LIMIT $3 OFFSET $4
)
SELECT tasks.*
FROM page
JOIN tasks USING (id)
ORDER BY page.created_at DESC, page.id DESC;
