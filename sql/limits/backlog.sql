-- Each limited kind: its limits, its running attempts, and the tasks a limit sent back
-- to wait (still PENDING), with how long the oldest has waited.
-- (no parameters)
SELECT l.kind, l.concurrency, l.rate_limit, l.rate_period_seconds,
       (SELECT count(*) FROM tasks r WHERE r.kind = l.kind AND r.status = 'IN_PROGRESS') AS running,
       coalesce(w.waiting, 0) AS waiting,
       coalesce(extract(epoch FROM now() - w.oldest), 0)::double precision AS oldest_wait_seconds
FROM kind_limits l
LEFT JOIN LATERAL (
    SELECT count(*) AS waiting, min(w.since) AS oldest
    FROM kind_limit_waits w
    JOIN tasks t ON t.id = w.task_id
    WHERE w.kind = l.kind
      AND t.status = 'PENDING'
) w ON true
ORDER BY l.kind;
