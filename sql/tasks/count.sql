-- How many tasks have these statuses and priorities, from the trigger-kept
-- counters (exact, and cheap at any table size). A NULL filter matches everything.
-- $1 statuses (text[] or NULL), $2 priorities (text[] or NULL)
SELECT coalesce(sum(n), 0)::bigint
FROM task_counts
WHERE ($1::text[] IS NULL OR status = ANY ($1))
  AND ($2::text[] IS NULL OR priority = ANY ($2));
