-- Delete a schedule and return it as it was; the tasks it created stay, their
-- schedule_id set to NULL by the foreign key. No row when there was no such schedule.
-- $1 schedule id
WITH deleted AS (
    DELETE FROM schedules WHERE id = $1 RETURNING *
)
SELECT deleted.*, t.status AS last_task_status
FROM deleted
LEFT JOIN tasks t ON t.id = deleted.last_task_id;
