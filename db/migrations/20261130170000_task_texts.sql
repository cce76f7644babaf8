-- migrate:up

-- The searchable text of each task, apart from the row that every status change rewrites:
-- no status change of `tasks` is HOT (status is indexed), so each one wrote a full set of
-- trigram entries into the search index again. Here the text and its index are written
-- once, when the task is created (a trigger, so every way of inserting a task fills it),
-- and go with the task (ON DELETE CASCADE). name and description are copied, not only
-- their concatenation: a search tests each column on its own, and the copies let a count
-- decide without reading `tasks` (docs/design.md, "Query plans"). Neither column of a task
-- ever changes. No parallel scans: a search reads few rows, and a narrow table's planned
-- parallel bitmap scan started two workers (about 10 ms) even where it never ran.
CREATE TABLE task_texts (
    task_id uuid PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    name text NOT NULL,
    description text
) WITH (parallel_workers = 0);

INSERT INTO task_texts (task_id, created_at, name, description)
SELECT id, created_at, name, description FROM tasks;

CREATE INDEX task_texts_search_idx ON task_texts USING gin (
    date_trunc('hour', created_at AT TIME ZONE 'UTC'),
    (name || ' ' || coalesce(description, '')) gin_trgm_ops);
DROP INDEX tasks_search_idx;

CREATE FUNCTION record_task_texts() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    INSERT INTO task_texts (task_id, created_at, name, description)
    SELECT id, created_at, name, description FROM new_rows;
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_texts_on_insert AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION record_task_texts();

-- migrate:down

DROP TRIGGER tasks_texts_on_insert ON tasks;
DROP FUNCTION record_task_texts();
CREATE INDEX tasks_search_idx ON tasks USING gin (
    date_trunc('hour', created_at AT TIME ZONE 'UTC'),
    (name || ' ' || coalesce(description, '')) gin_trgm_ops);
DROP TABLE task_texts;
