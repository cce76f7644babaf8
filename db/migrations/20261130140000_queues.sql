-- migrate:up

-- The queue a task is routed through (taskservice worker --queues): a name like a kind's.
ALTER TABLE tasks ADD COLUMN queue text NOT NULL DEFAULT 'default'
    CONSTRAINT tasks_queue_check CHECK (queue ~ '^[A-Za-z0-9_.:-]{1,100}$');

-- The list filtered by queue, newest first (the shape of tasks_status_created_idx).
CREATE INDEX tasks_queue_created_idx ON tasks (queue, created_at DESC, id DESC);
-- Stats per queue: only the tasks still waiting or running, so it stays small.
CREATE INDEX tasks_queue_active_idx ON tasks (queue, status)
    WHERE status IN ('NEW', 'PENDING', 'IN_PROGRESS');

-- migrate:down

DROP INDEX tasks_queue_active_idx;
DROP INDEX tasks_queue_created_idx;
ALTER TABLE tasks DROP COLUMN queue;
