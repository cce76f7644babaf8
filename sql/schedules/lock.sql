-- One schedule by id, locked until the transaction ends: an edit waits for a firing
-- in progress, and a firing skips the schedule while it is being edited.
-- $1 schedule id
SELECT * FROM schedules WHERE id = $1 FOR UPDATE;
