-- Of a search's words, the one that the fewest of the newest $2 tasks contain (of
-- equals, the longest): the trigram index looks up that word, not the whole text.
-- Plan: see docs/design.md, "Query plans".
-- $1 the search's words (text[], letters and digits only), $2 newest tasks to look at
SELECT word
FROM unnest($1::text[]) AS word
ORDER BY (SELECT count(*)
          FROM (SELECT name || ' ' || coalesce(description, '') AS text
                FROM tasks
                ORDER BY created_at DESC, id DESC
                LIMIT $2::bigint) AS recent
          WHERE recent.text ILIKE '%' || word || '%'),
         length(word) DESC
LIMIT 1;
