-- Seconds until the next enabled schedule is due (0 or less: it is); NULL when none is enabled.
-- (no parameters)
SELECT extract(epoch FROM min(next_run_at) - clock_timestamp())::float8
FROM schedules
WHERE enabled;
