-- migrate:up

-- Recurring tasks. A schedule is a cron expression (in its time zone) or an interval
-- (`every_seconds`, ticks on multiples of it since the Unix epoch), and the create body of
-- the task each tick makes. The dispatcher fires a schedule once `next_run_at` has come:
-- it creates the task and moves `next_run_at` to the next tick after now, in one
-- transaction. `next_run_at` is NULL exactly while the schedule is disabled.
-- `last_task_id` has no foreign key: retention deletes old tasks, and a key would make each
-- of those deletes lock the schedule a dispatcher may be firing.
CREATE TABLE schedules (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 255),
    cron text CHECK (char_length(cron) BETWEEN 1 AND 255),
    every_seconds integer CHECK (every_seconds BETWEEN 1 AND 31622400),
    timezone text NOT NULL DEFAULT 'UTC' CHECK (char_length(timezone) BETWEEN 1 AND 255),
    task jsonb NOT NULL CHECK (jsonb_typeof(task) = 'object'),
    enabled boolean NOT NULL DEFAULT true,
    overlap text NOT NULL DEFAULT 'allow' CHECK (overlap IN ('allow', 'skip')),
    next_run_at timestamptz,
    last_run_at timestamptz,
    last_task_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT cron_xor_every CHECK ((cron IS NULL) <> (every_seconds IS NULL)),
    CONSTRAINT next_run_iff_enabled CHECK ((next_run_at IS NOT NULL) = enabled)
);

CREATE INDEX schedules_due_idx ON schedules (next_run_at) WHERE enabled;
CREATE INDEX schedules_created_idx ON schedules (created_at DESC, id DESC);

-- The task a schedule's tick created, and that tick. The unique pair makes a second
-- firing of one tick impossible, whatever the number of dispatchers; partial, so tasks
-- created by clients pay for no index entry.
ALTER TABLE tasks
    ADD COLUMN schedule_id uuid REFERENCES schedules (id) ON DELETE SET NULL,
    ADD COLUMN scheduled_for timestamptz,
    ADD CONSTRAINT scheduled_for_a_tick CHECK (schedule_id IS NULL OR scheduled_for IS NOT NULL);

CREATE UNIQUE INDEX tasks_schedule_tick_idx ON tasks (schedule_id, scheduled_for)
    WHERE schedule_id IS NOT NULL;

-- A schedule's tasks, newest first: the list filtered by schedule_id.
CREATE INDEX tasks_schedule_created_idx ON tasks (schedule_id, created_at DESC, id DESC)
    WHERE schedule_id IS NOT NULL;

-- migrate:down

DROP INDEX tasks_schedule_created_idx;
DROP INDEX tasks_schedule_tick_idx;
ALTER TABLE tasks
    DROP CONSTRAINT scheduled_for_a_tick,
    DROP COLUMN scheduled_for,
    DROP COLUMN schedule_id;
DROP TABLE schedules;
