-- Create many tasks and their outbox rows in one statement: tasks/create for a
-- batch (the same columns and defaults). One row per array position; the
-- statement-level triggers record one NEW event per task. An item whose
-- idempotency key is already taken writes nothing and returns no row. Each row
-- returned carries `position`, its item's 1-based place in the arrays.
-- $1 names, $2 descriptions, $3 priorities, $4 kinds, $5 payloads (JSON text),
-- $6 max_attempts, $7 timeout_seconds, $8 run_at (NULL = now),
-- $9 idempotency keys (NULL = none), $10 request hashes (NULL = none),
-- $11 callback URLs (NULL = none), $12 queues, $13 how many parents each names
-- (0 = due now; else no outbox row until dependencies/link.sql finds them all
-- COMPLETED); all arrays of one length; $14 lease seconds: the outbox rows of
-- tasks due now are leased to the caller's own dispatcher for that long (it
-- publishes them without claiming them, taskservice/handoff.py), each returned
-- with its `outbox_id` and `leased` true; NULL leaves every row to the
-- dispatchers' claim (outbox/claim_due.sql)
WITH items AS MATERIALIZED (
    SELECT gen_random_uuid() AS id, i.*
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                $6::integer[], $7::integer[], $8::timestamptz[], $9::text[], $10::text[],
                $11::text[], $12::text[], $13::integer[])
         WITH ORDINALITY
         AS i(name, description, priority, kind, payload, max_attempts,
              timeout_seconds, run_at, idempotency_key, request_hash, callback_url, queue,
              waiting_on, position)
), new_tasks AS (
    INSERT INTO tasks (id, name, description, priority, kind, payload,
                       max_attempts, timeout_seconds, run_at,
                       idempotency_key, request_hash, callback_url, queue, waiting_on)
    SELECT id, name, description, priority, kind, payload::jsonb,
           max_attempts, timeout_seconds, run_at, idempotency_key, request_hash, callback_url, queue,
           waiting_on
    FROM items
    ORDER BY idempotency_key, position  -- keys in one order: no deadlock
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING *, $14::double precision IS NOT NULL AND waiting_on = 0
                 AND coalesce(run_at, now()) <= now() AS leased
), dispatch AS (
    INSERT INTO outbox (task_id, priority, available_at)
    SELECT id, priority,
           CASE WHEN leased
                THEN now() + make_interval(secs => $14)  -- due again only if not published by then
                ELSE coalesce(run_at, now())
           END
    FROM new_tasks
    WHERE waiting_on = 0
    RETURNING id, task_id
)
SELECT new_tasks.*, items.position, dispatch.id AS outbox_id
FROM new_tasks
JOIN items USING (id)
LEFT JOIN dispatch ON dispatch.task_id = new_tasks.id
ORDER BY items.position;
