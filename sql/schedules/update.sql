-- Replace a schedule's settings (the caller merged the edit and worked out next_run_at).
-- $1 schedule id, $2 name, $3 cron (NULL with every), $4 every_seconds (NULL with cron),
-- $5 timezone, $6 task (jsonb), $7 enabled, $8 overlap, $9 next_run_at (NULL exactly when disabled)
WITH updated AS (
    UPDATE schedules
    SET name = $2, cron = $3, every_seconds = $4, timezone = $5, task = $6, enabled = $7,
        overlap = $8, next_run_at = $9, updated_at = now()
    WHERE id = $1
    RETURNING *
)
SELECT updated.*, t.status AS last_task_status
FROM updated
LEFT JOIN tasks t ON t.id = updated.last_task_id;
