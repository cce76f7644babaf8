-- The outbox backlog, for the metrics: how many unpublished rows are due, and
-- how long (seconds) the oldest of them has been due; 0 and 0 when none are.
-- Plan: see docs/design.md, "Query plans".
-- (no parameters)
SELECT count(*) AS due,
       coalesce(extract(epoch FROM now() - min(available_at)), 0)::float8 AS oldest_due_age_seconds
FROM outbox
WHERE published_at IS NULL
  AND available_at <= now();
