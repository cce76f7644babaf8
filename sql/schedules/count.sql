-- How many schedules there are.
-- (no parameters)
SELECT count(*) FROM schedules;
