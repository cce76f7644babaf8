-- migrate:up

-- GET /api/v1/tasks/{id}/status?wait= is served from the API process's event
-- feed (the task_events rows its status streams read), so a waiting request no
-- longer marks the task watched: the column, and the trigger that sent NOTIFY
-- task_status for watched tasks, go.
DROP TRIGGER tasks_notify_status ON tasks;
DROP FUNCTION notify_task_status();
ALTER TABLE tasks DROP COLUMN watched_until;

-- migrate:down

ALTER TABLE tasks ADD COLUMN watched_until timestamptz;

CREATE FUNCTION notify_task_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('task_status', NEW.id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_notify_status AFTER UPDATE OF status ON tasks
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.watched_until > now())
    EXECUTE FUNCTION notify_task_status();
