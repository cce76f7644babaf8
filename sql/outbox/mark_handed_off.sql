-- Record that RabbitMQ confirmed these handed-over outbox rows (tasks/create_many
-- leased them to this process's dispatcher, taskservice/handoff.py) and move
-- their tasks NEW → PENDING, as outbox/claim_due marks a claimed batch. A task a
-- worker claimed meanwhile keeps its status: its claim recorded the PENDING it
-- passed through. Returns the tasks moved. Run on the dispatcher's claim
-- connection (taskservice/outbox.py, CLAIM_SESSION). Both guards are a CASE so
-- that its generic plan reads each row by primary key: as `published_at IS NULL`
-- the row guard matched outbox_due_idx, whose every entry that plan would read.
-- $1 outbox ids (bigint[])
WITH published AS (
    UPDATE outbox
    SET published_at = now()
    WHERE id = ANY ($1)
      AND CASE WHEN published_at IS NULL THEN true ELSE false END
    RETURNING task_id
)
UPDATE tasks t
SET status = 'PENDING',
    updated_at = now()
FROM published
WHERE t.id = published.task_id
  AND CASE t.status WHEN 'NEW' THEN true ELSE false END
RETURNING t.id;
