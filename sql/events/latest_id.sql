-- The newest event id so far (0 when there is none): where a stream that
-- could not replay everything goes on from.
-- (no parameters)
SELECT coalesce(max(id), 0)
FROM task_events;
