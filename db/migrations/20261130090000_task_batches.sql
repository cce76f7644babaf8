-- migrate:up

-- A batch create (POST /api/v1/tasks/batch) sent with an Idempotency-Key: the key,
-- the hash of the request it came with, and its tasks in request order, so a retry
-- replays the same tasks. The unique key makes racing retries wait for the first
-- and then find its batch. Batches without a key leave no row.
CREATE TABLE task_batches (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    idempotency_key text NOT NULL UNIQUE CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
    request_hash text NOT NULL,
    task_ids uuid[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX task_batches_created_idx ON task_batches (created_at);

-- migrate:down

DROP TABLE task_batches;
