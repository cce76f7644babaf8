-- Tasks waiting or running, per queue and status: the stats per queue, and
-- the queues the lost-message sweeper looks at. The partial index
-- tasks_queue_active_idx holds just these rows, so the cost follows the
-- backlog, not the table.
-- (no parameters)
SELECT queue, status, count(*) AS n
FROM tasks
WHERE status IN ('NEW', 'PENDING', 'IN_PROGRESS')
GROUP BY queue, status
ORDER BY queue, status;
