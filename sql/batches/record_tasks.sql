-- Record a keyed batch's tasks, in request order, for its replays.
-- $1 batch id, $2 task ids (uuid[])
UPDATE task_batches
SET task_ids = $2::uuid[]
WHERE id = $1;
