-- One page of tasks, newest first. A NULL filter matches everything; a single
-- status, priority or queue is compared with =, several with = ANY. (A text search
-- has its own query, search_page.sql.)
-- Plan: see docs/design.md, "Query plans" (the shape is chosen for the indexes).
-- $1 statuses (text[] or NULL), $2 priorities (text[] or NULL), $3 limit, $4 offset,
-- $5 queues (text[] or NULL), $6 schedule id (NULL = any),
-- $7 waiting on parents (NULL = either; true: NEW with waiting_on > 0, tasks_waiting_idx)
WITH page AS (
    SELECT id, created_at
    FROM tasks
    WHERE ($1::text[] IS NULL
           OR (cardinality($1) = 1 AND status = $1[1])
           OR (cardinality($1) > 1 AND status = ANY ($1)))
      AND ($2::text[] IS NULL
           OR (cardinality($2) = 1 AND priority = $2[1])
           OR (cardinality($2) > 1 AND priority = ANY ($2)))
      AND ($5::text[] IS NULL
           OR (cardinality($5) = 1 AND queue = $5[1])
           OR (cardinality($5) > 1 AND queue = ANY ($5)))
      AND ($6::uuid IS NULL OR schedule_id = $6)
      AND ($7::boolean IS NULL OR (status = 'NEW' AND waiting_on > 0) = $7)
    ORDER BY created_at DESC, id DESC
    LIMIT $3 OFFSET $4
)
SELECT tasks.*,
       ARRAY(SELECT parent_id FROM task_dependencies d WHERE d.task_id = tasks.id ORDER BY parent_id) AS depends_on
FROM page
JOIN tasks USING (id)
ORDER BY page.created_at DESC, page.id DESC;
