-- One task's status (a waiting request reads it again after each wake-up).
-- $1 task id
SELECT status FROM tasks WHERE id = $1;
