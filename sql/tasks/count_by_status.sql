-- Tasks per status and priority, from the trigger-kept counters (summed over
-- their shards): a few dozen rows whatever the table size.
-- (no parameters)
SELECT status, priority, sum(n)::bigint AS n
FROM task_counts
GROUP BY status, priority;
