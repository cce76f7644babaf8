-- One page of tasks, newest first. A NULL filter matches everything; a single
-- status, priority or queue is compared with =, several with = ANY.
-- Plan: see docs/design.md, "Query plans" (the shape is chosen for the indexes).
-- $1 statuses (text[] or NULL), $2 priorities (text[] or NULL),
-- $3 search text (NULL = none; %, _ and \ match literally),
-- $4 limit, $5 offset, $6 queues (text[] or NULL), $7 schedule id (NULL = any),
-- $8 waiting on parents (NULL = either; true: NEW with waiting_on > 0, tasks_waiting_idx)
WITH page AS (
    SELECT id, created_at
    FROM tasks
    WHERE ($1::text[] IS NULL
           OR (cardinality($1) = 1 AND status = $1[1])
           OR (cardinality($1) > 1 AND status = ANY ($1)))
      AND ($2::text[] IS NULL
           OR (cardinality($2) = 1 AND priority = $2[1])
           OR (cardinality($2) > 1 AND priority = ANY ($2)))
      AND ($6::text[] IS NULL
           OR (cardinality($6) = 1 AND queue = $6[1])
           OR (cardinality($6) > 1 AND queue = ANY ($6)))
      AND ($3::text IS NULL
           OR name ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%'
           OR description ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%')
      AND ($7::uuid IS NULL OR schedule_id = $7)
      AND ($8::boolean IS NULL OR (status = 'NEW' AND waiting_on > 0) = $8)
    ORDER BY created_at DESC, id DESC
    LIMIT $4 OFFSET $5
)
SELECT tasks.*,
       ARRAY(SELECT parent_id FROM task_dependencies d WHERE d.task_id = tasks.id ORDER BY parent_id) AS depends_on
FROM page
JOIN tasks USING (id)
ORDER BY page.created_at DESC, page.id DESC;
