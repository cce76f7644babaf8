-- NEW → PENDING for the tasks whose outbox rows their create leased to this
-- process's dispatcher (tasks/create_many's lease): run while it publishes
-- their messages, where outbox/claim_due marks a claimed batch before. A
-- worker's claim usually finds the task PENDING; one that reached it first took
-- it from NEW (claims accept both), and such a task keeps its status here.
-- Returns the tasks moved. Run on the dispatcher's claim connection
-- (taskservice/outbox.py, CLAIM_SESSION).
-- $1 task ids (uuid[])
UPDATE tasks t
SET status = 'PENDING',
    updated_at = now()
WHERE t.id = ANY($1::uuid[])
  AND CASE t.status WHEN 'NEW' THEN true ELSE false END
RETURNING t.id;
