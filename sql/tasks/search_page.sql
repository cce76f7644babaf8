-- One page of the tasks matching a text search (and the other filters), newest first,
-- each with `from_newest`: whether the page came from the walk of the newest tasks, and
-- `matched`: how many tasks match in all, when the page came from the index (whose
-- branch tests and sorts every candidate anyway); NULL from the walk.
-- Plan: see docs/design.md, "Query plans" (the newest tasks when matches are common,
-- the trigram index when they are not; one of the two runs). A match lies in the name
-- or in the description, never across the two; when the key is the whole search and it
-- holds no space, the key's test on their joined text says that already.
-- $1 statuses (text[] or NULL), $2 priorities (text[] or NULL),
-- $3 search text (%, _ and \ match literally), $4 limit, $5 offset,
-- $6 index key (part of the search text, for the trigram index), $7 most of the newest tasks to read,
-- $8 queues (text[] or NULL), $9 schedule id (NULL = any)
WITH newest AS MATERIALIZED (
    SELECT id, created_at
    FROM (
        SELECT id, created_at, name, description
        FROM tasks
        WHERE $4::bigint + $5::bigint <= $7::bigint
          AND ($1::text[] IS NULL
               OR (cardinality($1) = 1 AND status = $1[1])
               OR (cardinality($1) > 1 AND status = ANY ($1)))
          AND ($2::text[] IS NULL
               OR (cardinality($2) = 1 AND priority = $2[1])
               OR (cardinality($2) > 1 AND priority = ANY ($2)))
          AND ($8::text[] IS NULL
               OR (cardinality($8) = 1 AND queue = $8[1])
               OR (cardinality($8) > 1 AND queue = ANY ($8)))
          AND ($9::uuid IS NULL OR schedule_id = $9)
        ORDER BY created_at DESC, id DESC
        LIMIT $7
    ) AS recent
    WHERE name ILIKE '%' || replace(replace(replace($3::text, '\', '\\'), '%', '\%'), '_', '\_') || '%'
       OR description ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%'
    LIMIT $4 + $5
),
page AS (
    (SELECT id, created_at, true AS from_newest, NULL::bigint AS matched
     FROM newest
     WHERE (SELECT count(*) FROM newest) = $4 + $5
     ORDER BY created_at DESC, id DESC
     OFFSET $5)
    UNION ALL
    (SELECT task_id, created_at, false, count(*) OVER ()
     FROM task_texts
     WHERE (SELECT count(*) FROM newest) < $4 + $5
       AND (name || ' ' || coalesce(description, ''))
           ILIKE '%' || replace(replace(replace($6::text, '\', '\\'), '%', '\%'), '_', '\_') || '%'
       AND ($3 = $6 AND strpos($3, ' ') = 0  -- the key's test decides alone
            OR name ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%'
            OR description ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%')
       AND (($1::text[] IS NULL AND $2::text[] IS NULL AND $8::text[] IS NULL AND $9::uuid IS NULL)
            OR EXISTS (SELECT FROM tasks t
                       WHERE t.id = task_texts.task_id
                         AND ($1::text[] IS NULL OR t.status = ANY ($1))
                         AND ($2::text[] IS NULL OR t.priority = ANY ($2))
                         AND ($8::text[] IS NULL OR t.queue = ANY ($8))
                         AND ($9::uuid IS NULL OR t.schedule_id = $9)))
     ORDER BY created_at DESC, task_id DESC
     LIMIT $4 OFFSET $5)
)
SELECT tasks.*, page.from_newest, page.matched,
       ARRAY(SELECT parent_id FROM task_dependencies d WHERE d.task_id = tasks.id ORDER BY parent_id) AS depends_on
FROM page
JOIN tasks USING (id)
ORDER BY page.created_at DESC, page.id DESC;
