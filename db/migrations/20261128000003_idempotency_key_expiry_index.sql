-- migrate:up transaction:false

-- The maintenance loop clears idempotency keys older than IDEMPOTENCY_TTL_SECONDS,
-- oldest first; this finds them without reading the tasks whose keys are already
-- gone (or never existed). Built CONCURRENTLY so creates go on meanwhile; that
-- cannot run in a transaction, hence one statement in a migration of its own.
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_idempotency_created_idx
    ON tasks (created_at) WHERE idempotency_key IS NOT NULL;

-- migrate:down transaction:false

DROP INDEX CONCURRENTLY IF EXISTS tasks_idempotency_created_idx;
