-- Create a task from a schedule's template now, outside its ticks ("run now"): the task
-- carries schedule_id and now as its tick, and becomes the schedule's last task; the
-- next run stays. No row when there is no such schedule.
-- $1 schedule id
WITH new_task AS (
    INSERT INTO tasks (name, description, priority, kind, payload, max_attempts,
                       timeout_seconds, queue, callback_url, schedule_id, scheduled_for)
    SELECT s.task->>'name', s.task->>'description', s.task->>'priority', s.task->>'kind',
           s.task->'payload', (s.task->>'max_attempts')::integer,
           (s.task->>'timeout_seconds')::integer, coalesce(s.task->>'queue', 'default'),
           s.task->>'callback_url', s.id, now()
    FROM schedules s
    WHERE s.id = $1
    FOR UPDATE
    ON CONFLICT (schedule_id, scheduled_for) WHERE schedule_id IS NOT NULL DO NOTHING
    RETURNING *
), dispatch AS (
    INSERT INTO outbox (task_id, priority, available_at)
    SELECT id, priority, now()
    FROM new_task
), recorded AS (
    UPDATE schedules s
    SET last_run_at = new_task.created_at, last_task_id = new_task.id
    FROM new_task
    WHERE s.id = new_task.schedule_id
)
SELECT * FROM new_task;
