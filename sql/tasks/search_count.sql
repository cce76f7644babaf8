-- How many tasks match a text search (and the other filters), counting no further
-- than $4: an exact count of a common word over millions of rows would cost more
-- than the page itself.
-- Plan: see docs/design.md, "Query plans" (the trigram index over the hours since $5,
-- which should hold $4 matches; over all of it when they do not, or $5 is NULL;
-- `tasks` read only for the other filters). A match lies in the name or in the
-- description, never across the two; when the key is the whole search and it holds no
-- space, the key's test on their joined text says that already.
-- $1 statuses (text[] or NULL), $2 priorities (text[] or NULL),
-- $3 search text (%, _ and \ match literally), $4 the most to count,
-- $5 count from this hour first (timestamptz or NULL), $6 index key (part of the search text),
-- $7 queues (text[] or NULL), $8 schedule id (NULL = any)
WITH matching AS NOT MATERIALIZED (  -- inlined into both counts below
    SELECT task_id, created_at
    FROM task_texts
    WHERE (name || ' ' || coalesce(description, ''))
          ILIKE '%' || replace(replace(replace($6::text, '\', '\\'), '%', '\%'), '_', '\_') || '%'
      AND ($3::text = $6 AND strpos($3, ' ') = 0  -- the key's test decides alone
           OR name ILIKE '%' || replace(replace(replace($3::text, '\', '\\'), '%', '\%'), '_', '\_') || '%'
           OR description ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%')
      AND (($1::text[] IS NULL AND $2::text[] IS NULL AND $7::text[] IS NULL AND $8::uuid IS NULL)
           OR EXISTS (SELECT FROM tasks t
                      WHERE t.id = task_texts.task_id
                        AND ($1::text[] IS NULL OR t.status = ANY ($1))
                        AND ($2::text[] IS NULL OR t.priority = ANY ($2))
                        AND ($7::text[] IS NULL OR t.queue = ANY ($7))
                        AND ($8::uuid IS NULL OR t.schedule_id = $8)))
), ranged AS MATERIALIZED (
    SELECT 1
    FROM matching
    WHERE $5::timestamptz IS NOT NULL
      AND date_trunc('hour', created_at AT TIME ZONE 'UTC') >= date_trunc('hour', $5 AT TIME ZONE 'UTC')
    LIMIT $4::bigint
)
SELECT CASE
    WHEN (SELECT count(*) FROM ranged) >= $4 THEN $4
    ELSE (SELECT count(*) FROM (SELECT 1 FROM matching LIMIT $4) AS capped)
END;
