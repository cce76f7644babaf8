-- Create a task and the outbox row that will dispatch it, in one statement.
-- The task's first event comes from a trigger; the caller wakes the dispatchers
-- after the commit (outbox/notify_due.sql).
-- With an idempotency key already taken, nothing is written and no row returns.
-- $1 name, $2 description, $3 priority, $4 kind, $5 payload (jsonb),
-- $6 max_attempts, $7 timeout_seconds, $8 run_at (NULL = now),
-- $9 idempotency_key (NULL = none), $10 request_hash (NULL = none),
-- $11 callback_url (NULL = none), $12 queue, $13 how many parents it names (0 = none:
-- due now; else no outbox row until dependencies/link.sql finds them all COMPLETED)
WITH new_task AS (
    INSERT INTO tasks (name, description, priority, kind, payload,
                       max_attempts, timeout_seconds, run_at,
                       idempotency_key, request_hash, callback_url, queue, waiting_on)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING *
), dispatch AS (
    INSERT INTO outbox (task_id, priority, available_at)
    SELECT id, priority, coalesce(run_at, now())
    FROM new_task
    WHERE waiting_on = 0
)
SELECT * FROM new_task;
