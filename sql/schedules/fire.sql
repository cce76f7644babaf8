-- Fire claimed schedules in one statement: each one's task (from its template, with
-- schedule_id and the tick) and outbox row, then its next run, last run and last task.
-- A tick already fired conflicts and creates nothing. Returns the new tasks.
-- $1 schedule ids (uuid[]), $2 the tick each fires (timestamptz[]; NULL = skip it this time),
-- $3 each one's next run (timestamptz[]); arrays of one length
WITH due AS (
    SELECT *
    FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS d(schedule_id, fire_at, next_run_at)
), new_tasks AS (
    INSERT INTO tasks (name, description, priority, kind, payload, max_attempts,
                       timeout_seconds, queue, callback_url, schedule_id, scheduled_for)
    SELECT s.task->>'name', s.task->>'description', s.task->>'priority', s.task->>'kind',
           s.task->'payload', (s.task->>'max_attempts')::integer,
           (s.task->>'timeout_seconds')::integer, coalesce(s.task->>'queue', 'default'),
           s.task->>'callback_url', s.id, due.fire_at
    FROM due
    JOIN schedules s ON s.id = due.schedule_id
    WHERE due.fire_at IS NOT NULL
    ORDER BY s.id
    ON CONFLICT (schedule_id, scheduled_for) WHERE schedule_id IS NOT NULL DO NOTHING
    RETURNING *
), dispatch AS (
    INSERT INTO outbox (task_id, priority, available_at)
    SELECT id, priority, now()
    FROM new_tasks
), advanced AS (
    UPDATE schedules s
    SET next_run_at = due.next_run_at,
        last_run_at = coalesce(t.created_at, s.last_run_at),
        last_task_id = coalesce(t.id, s.last_task_id)
    FROM due
    LEFT JOIN new_tasks t ON t.schedule_id = due.schedule_id
    WHERE s.id = due.schedule_id
)
SELECT * FROM new_tasks;
