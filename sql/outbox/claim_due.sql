-- Lease a batch of due, unpublished outbox rows to this dispatcher for $2
-- seconds, and mark their tasks PENDING, in one short transaction. SKIP LOCKED
-- lets any number of dispatchers share the outbox; the lease (available_at
-- moved ahead) keeps the rows from the others while this one publishes them
-- with no transaction open, so a worker claiming a task never waits for the
-- batch's publisher confirms. A dispatcher that dies meanwhile lets its rows
-- come due again when the lease runs out; one that publishes and then fails to
-- mark them publishes them again (the worker skips the duplicates). A task
-- already taken or cancelled keeps its status. `dispatched` says whether this
-- claim moved the row's task from NEW to PENDING (for the transition metrics);
-- `queue` is the task's, which routes its message. Run on the dispatcher's claim
-- connection, which plans it with index scans only and commits it without waiting
-- for the WAL flush (taskservice/outbox.py, CLAIM_SESSION, says why).
-- Plan: see docs/design.md, "Query plans" (the guard is a CASE on purpose).
-- $1 batch size, $2 lease seconds
WITH due AS (
    SELECT id, task_id, priority, available_at
    FROM outbox
    WHERE published_at IS NULL
      AND available_at <= now()
    ORDER BY available_at, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE outbox o
    SET available_at = now() + make_interval(secs => $2)
    FROM due
    WHERE o.id = due.id
), dispatched AS (
    UPDATE tasks t
    SET status = 'PENDING',
        updated_at = now()
    FROM due
    WHERE t.id = due.task_id
      AND CASE t.status WHEN 'NEW' THEN true ELSE false END
    RETURNING t.id
)
SELECT due.id, due.task_id, due.priority, t.queue, due.task_id IN (SELECT id FROM dispatched) AS dispatched
FROM due
JOIN tasks t ON t.id = due.task_id
ORDER BY due.available_at, due.id;
