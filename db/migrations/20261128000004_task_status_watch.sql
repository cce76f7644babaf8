-- migrate:up

-- GET /api/v1/tasks/{id}/status?wait= waits for a status change on LISTEN
-- task_status. A NOTIFY inside a writing transaction serialises commits
-- (migration 2 removed one for that reason), so a change notifies only while
-- a client is waiting for that task: the waiting request first sets
-- watched_until, and the trigger's WHEN clause (evaluated without calling any
-- function) skips every task nobody watches. A stale value needs no cleanup:
-- it simply lies in the past.
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

-- migrate:down

DROP TRIGGER tasks_notify_status ON tasks;
DROP FUNCTION notify_task_status();
ALTER TABLE tasks DROP COLUMN watched_until;
