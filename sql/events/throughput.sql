-- Tasks created, completed and failed per second over the last $1 minutes,
-- oldest first; only seconds with such an event have a row. The window comes
-- back on every row (since, until: one clock, the database's); with no event
-- at all, one row with a NULL `at` still carries it.
-- Plan: see docs/design.md, "Query plans".
-- $1 minutes (1-60)
SELECT now() - make_interval(mins => $1) AS since, now() AS until,
       p.at, p.created, p.completed, p.failed
FROM (SELECT 1) AS window_row
LEFT JOIN (
    SELECT date_trunc('second', created_at) AS at,
           count(*) FILTER (WHERE status = 'NEW') AS created,
           count(*) FILTER (WHERE status = 'COMPLETED') AS completed,
           count(*) FILTER (WHERE status = 'FAILED') AS failed
    FROM task_events
    WHERE created_at > now() - make_interval(mins => $1)
      AND status IN ('NEW', 'COMPLETED', 'FAILED')
    GROUP BY 1
) AS p ON true
ORDER BY p.at;
