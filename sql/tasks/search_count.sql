-- How many tasks match a text search (and the other filters), counting no further
-- than $4: an exact count of a common word over millions of rows would cost more
-- than the page itself.
-- Plan: see docs/design.md, "Query plans" (a sample of the newest tasks, then the
-- trigram index over the recent hours that should hold $4 matches, or over all).
-- $1 statuses (text[] or NULL), $2 priorities (text[] or NULL),
-- $3 search text (%, _ and \ match literally), $4 the most to count,
-- $5 newest tasks to sample, $6 most tasks the recent hours may span,
-- $7 index key (a substring of $3 for the trigram index)
WITH sample AS MATERIALIZED (
    SELECT count(*) AS seen,
           count(*) FILTER (
               WHERE name ILIKE '%' || replace(replace(replace($3::text, '\', '\\'), '%', '\%'), '_', '\_') || '%'
                  OR description ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%'
           ) AS matching,
           min(created_at) AS oldest,
           max(created_at) AS newest
    FROM (
        SELECT created_at, name, description
        FROM tasks
        WHERE ($1::text[] IS NULL
               OR (cardinality($1) = 1 AND status = $1[1])
               OR (cardinality($1) > 1 AND status = ANY ($1)))
          AND ($2::text[] IS NULL
               OR (cardinality($2) = 1 AND priority = $2[1])
               OR (cardinality($2) > 1 AND priority = ANY ($2)))
        ORDER BY created_at DESC, id DESC
        LIMIT $5::bigint
    ) AS recent
),
-- Twice the time the sample took to show each match, times $4: NULL when that would
-- span more than $6 tasks at the sample's pace (a rare word), or the sample saw them all.
recent AS MATERIALIZED (
    SELECT newest - (newest - oldest) * (2.0 * $4::bigint / matching) AS since
    FROM sample
    WHERE seen = $5 AND matching > 0 AND 2.0 * $4 * $5 / matching <= $6::bigint
),
ranged AS MATERIALIZED (
    SELECT 1
    FROM tasks
    WHERE EXISTS (SELECT FROM recent)
      AND date_trunc('hour', created_at AT TIME ZONE 'UTC')
          >= date_trunc('hour', (SELECT since FROM recent) AT TIME ZONE 'UTC')
      AND (name || ' ' || coalesce(description, ''))
          ILIKE '%' || replace(replace(replace($7::text, '\', '\\'), '%', '\%'), '_', '\_') || '%'
      AND (name ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%'
           OR description ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%')
      AND ($1::text[] IS NULL OR status = ANY ($1))
      AND ($2::text[] IS NULL OR priority = ANY ($2))
    LIMIT $4
)
SELECT CASE
    WHEN (SELECT seen FROM sample) < $5 THEN least((SELECT matching FROM sample), $4)
    WHEN (SELECT count(*) FROM ranged) >= $4 THEN $4
    ELSE (SELECT count(*)
          FROM (SELECT 1
                FROM tasks
                WHERE (name || ' ' || coalesce(description, ''))
                      ILIKE '%' || replace(replace(replace($7, '\', '\\'), '%', '\%'), '_', '\_') || '%'
                  AND (name ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%'
                       OR description ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%')
                  AND ($1::text[] IS NULL OR status = ANY ($1))
                  AND ($2::text[] IS NULL OR priority = ANY ($2))
                LIMIT $4) AS matching)
END;
