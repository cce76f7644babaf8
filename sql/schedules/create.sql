-- Create a schedule; it has no last task yet.
-- $1 name, $2 cron (NULL with every), $3 every_seconds (NULL with cron), $4 timezone,
-- $5 task (the create body of each tick's task, jsonb), $6 enabled, $7 overlap,
-- $8 next_run_at (NULL exactly when disabled)
WITH created AS (
    INSERT INTO schedules (name, cron, every_seconds, timezone, task, enabled, overlap, next_run_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    RETURNING *
)
SELECT created.*, NULL::text AS last_task_status
FROM created;
