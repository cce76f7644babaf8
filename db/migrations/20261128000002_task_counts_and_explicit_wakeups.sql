-- migrate:up

-- Tasks per status × priority, kept by trigger, so list totals and stats cost
-- a few rows instead of count(*) over the table. Each backend writes its own
-- shard (pid % 16): concurrent transactions rarely wait on one counter row.
CREATE TABLE task_counts (
    status   text NOT NULL,
    priority text NOT NULL,
    shard    integer NOT NULL,
    n        bigint NOT NULL,
    PRIMARY KEY (status, priority, shard)
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);

CREATE FUNCTION count_task_status() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    my_shard integer := pg_backend_pid() % 16;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO task_counts AS c (status, priority, shard, n)
        VALUES (OLD.status, OLD.priority, my_shard, -1)
        ON CONFLICT (status, priority, shard) DO UPDATE SET n = c.n - 1;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO task_counts AS c (status, priority, shard, n)
        VALUES (NEW.status, NEW.priority, my_shard, 1)
        ON CONFLICT (status, priority, shard) DO UPDATE SET n = c.n + 1;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_count_on_insert AFTER INSERT ON tasks
    FOR EACH ROW EXECUTE FUNCTION count_task_status();
CREATE TRIGGER tasks_count_on_change AFTER UPDATE OF status, priority ON tasks
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.priority IS DISTINCT FROM NEW.priority)
    EXECUTE FUNCTION count_task_status();
CREATE TRIGGER tasks_count_on_delete AFTER DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION count_task_status();

LOCK TABLE tasks IN SHARE MODE;
INSERT INTO task_counts (status, priority, shard, n)
SELECT status, priority, 0, count(*) FROM tasks GROUP BY status, priority;

-- A NOTIFY inside the create transaction takes a database-wide lock at commit
-- and holds it through the WAL flush, so creates committed one at a time.
-- Writers now send NOTIFY outbox_due after committing (sql/outbox/notify_due.sql),
-- coalesced; the dispatcher's polling covers the rest.
DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION notify_outbox();

-- migrate:down

CREATE FUNCTION notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_due', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox();

DROP TRIGGER tasks_count_on_delete ON tasks;
DROP TRIGGER tasks_count_on_change ON tasks;
DROP TRIGGER tasks_count_on_insert ON tasks;
DROP FUNCTION count_task_status();
DROP TABLE task_counts;
