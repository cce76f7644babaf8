-- migrate:up

-- A running handler's progress (ctx.progress): its latest fraction and message, written
-- by the worker a few times a second at most. No index covers these columns, so a
-- progress write can be a HOT update, and the status triggers record nothing for it
-- (they record status changes only).
ALTER TABLE tasks
    ADD COLUMN progress_fraction double precision CHECK (progress_fraction BETWEEN 0 AND 1),
    ADD COLUMN progress_message text CHECK (char_length(progress_message) <= 1000),
    ADD COLUMN progress_updated_at timestamptz,
    ADD CONSTRAINT progress_complete CHECK (
        (progress_fraction IS NULL) = (progress_updated_at IS NULL)
        AND (progress_message IS NULL OR progress_fraction IS NOT NULL));

-- migrate:down

ALTER TABLE tasks
    DROP CONSTRAINT progress_complete,
    DROP COLUMN progress_updated_at,
    DROP COLUMN progress_message,
    DROP COLUMN progress_fraction;
