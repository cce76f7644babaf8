-- One page of tasks, newest first. A NULL filter matches everything.
-- The API pool runs with plan_cache_mode = force_custom_plan, so each call is
-- planned with its real filters and the matching index is used.
-- $1 statuses (text[] or NULL), $2 priorities (text[] or NULL),
-- $3 search text (NULL = none; %, _ and \ match literally),
-- $4 limit, $5 offset
SELECT *
FROM tasks
WHERE ($1::text[] IS NULL OR status = ANY ($1))
  AND ($2::text[] IS NULL OR priority = ANY ($2))
  AND ($3::text IS NULL
       OR name ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%'
       OR description ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%')
ORDER BY created_at DESC, id DESC
LIMIT $4 OFFSET $5;
