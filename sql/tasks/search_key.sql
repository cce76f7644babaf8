-- Of a search's words, the one that the fewest of the newest $2 tasks contain (of
-- equals, the longest), with how many of them contain it: the trigram index looks up
-- that word, not the whole text, and a word most of them lack is not worth a walk.
-- Plan: see docs/design.md, "Query plans".
-- $1 the search's words (text[]; %, _ and \ match literally), $2 newest tasks to look at
SELECT word, matching
FROM (SELECT word,
             (SELECT count(*)
              FROM (SELECT name || ' ' || coalesce(description, '') AS text
                    FROM tasks
                    ORDER BY created_at DESC, id DESC
                    LIMIT $2::bigint) AS recent
              WHERE recent.text
                    ILIKE '%' || replace(replace(replace(word, '\', '\\'), '%', '\%'), '_', '\_') || '%') AS matching
      FROM unnest($1::text[]) AS word) AS counted
ORDER BY matching, length(word) DESC
LIMIT 1;
