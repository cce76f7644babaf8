-- This API process's last stream closed: status changes stop notifying
-- (unless another process still has a row).
-- $1 listener id
DELETE FROM stream_listeners
WHERE listener = $1;
