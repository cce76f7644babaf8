-- How many tasks match a text search (and the other filters), counting no further
-- than $4: an exact count of a common word over millions of rows would cost more
-- than the page itself.
-- Plan: see docs/design.md, "Query plans" (the trigram index over the hours since $5,
-- which should hold $4 matches; over all of it when they do not, or $5 is NULL).
-- $1 statuses (text[] or NULL), $2 priorities (text[] or NULL),
-- $3 search text (%, _ and \ match literally), $4 the most to count,
-- $5 count from this hour first (timestamptz or NULL), $6 index key (part of the search text),
-- $7 queues (text[] or NULL), $8 schedule id (NULL = any)
WITH ranged AS MATERIALIZED (
    SELECT 1
    FROM tasks
    WHERE $5::timestamptz IS NOT NULL
      AND date_trunc('hour', created_at AT TIME ZONE 'UTC') >= date_trunc('hour', $5 AT TIME ZONE 'UTC')
      AND (name || ' ' || coalesce(description, ''))
          ILIKE '%' || replace(replace(replace($6::text, '\', '\\'), '%', '\%'), '_', '\_') || '%'
      AND (name ILIKE '%' || replace(replace(replace($3::text, '\', '\\'), '%', '\%'), '_', '\_') || '%'
           OR description ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%')
      AND ($1::text[] IS NULL OR status = ANY ($1))
      AND ($2::text[] IS NULL OR priority = ANY ($2))
      AND ($7::text[] IS NULL OR queue = ANY ($7))
      AND ($8::uuid IS NULL OR schedule_id = $8)
    LIMIT $4::bigint
)
SELECT CASE
    WHEN (SELECT count(*) FROM ranged) >= $4 THEN $4
    ELSE (SELECT count(*)
          FROM (SELECT 1
                FROM tasks
                WHERE (name || ' ' || coalesce(description, ''))
                      ILIKE '%' || replace(replace(replace($6, '\', '\\'), '%', '\%'), '_', '\_') || '%'
                  AND (name ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%'
                       OR description ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%')
                  AND ($1::text[] IS NULL OR status = ANY ($1))
                  AND ($2::text[] IS NULL OR priority = ANY ($2))
                  AND ($7::text[] IS NULL OR queue = ANY ($7))
                  AND ($8::uuid IS NULL OR schedule_id = $8)
                LIMIT $4) AS matching)
END;
