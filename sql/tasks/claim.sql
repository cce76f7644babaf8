-- Start attempts: NEW/PENDING → IN_PROGRESS with a lease, for every message a
-- worker received together, in one guarded UPDATE so two workers with the same
-- message cannot both win. A message from an older dispatch (a newer outbox row
-- exists for its task) is stale and claims nothing, so a duplicate cannot skip a
-- retry's backoff. Returns one row per claimed task, with the outbox id of the
-- message that claimed it and its parents' results (`parent_results`, parent
-- id → result, NULL for a task without parents); messages without a row
-- claimed nothing. Kinds with a limit are left to limits/claim.
-- With $6, the claim commits without waiting for the WAL flush (set_config's
-- setting lasts until the statement's own commit): an idle worker's lone claim,
-- whose message is acked only once a later synchronous commit has flushed it
-- (taskservice/worker.py, ack_once_flushed). `flushed` says which it was.
-- Plan: see docs/design.md, "Query plans" (the guard is a CASE on purpose).
-- $1 task ids (uuid[]), $2 the outbox id each message came from (bigint[], same
-- order), $3 worker id, $4 lease seconds, $5 the kinds to leave alone (text[]),
-- $6 commit without waiting for the WAL flush (boolean)
UPDATE tasks t
SET status = 'IN_PROGRESS',
    attempts = t.attempts + 1,
    started_at = now(),
    worker_id = $3,
    lease_expires_at = now() + make_interval(secs => $4),
    error = NULL,
    progress_fraction = NULL,  -- each attempt reports its own progress
    progress_message = NULL,
    progress_updated_at = NULL,
    updated_at = now()
FROM unnest($1::uuid[], $2::bigint[]) AS message (task_id, outbox_id)
WHERE t.id = message.task_id
  AND CASE t.status WHEN 'NEW' THEN true WHEN 'PENDING' THEN true ELSE false END
  AND t.attempts < t.max_attempts
  AND t.kind <> ALL($5::text[])
  AND (SELECT count(*) FROM outbox o WHERE o.task_id = message.task_id AND o.id > message.outbox_id) = 0
  AND (SELECT set_config('synchronous_commit',
                         CASE WHEN $6 THEN 'off' ELSE current_setting('synchronous_commit') END,
                         true)) IS NOT NULL
RETURNING t.*, message.outbox_id, NOT $6 AS flushed,
    (SELECT jsonb_object_agg(d.parent_id::text, p.result)
     FROM task_dependencies d
     JOIN tasks p ON p.id = d.parent_id
     WHERE d.task_id = t.id) AS parent_results;
