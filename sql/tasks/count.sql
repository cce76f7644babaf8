-- How many tasks match the list filters (the same filters as list_page).
-- $1 statuses (text[] or NULL), $2 priorities (text[] or NULL),
-- $3 search text (NULL = none; %, _ and \ match literally)
SELECT count(*)
FROM tasks
WHERE ($1::text[] IS NULL OR status = ANY ($1))
  AND ($2::text[] IS NULL OR priority = ANY ($2))
  AND ($3::text IS NULL
       OR name ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%'
       OR description ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%');
