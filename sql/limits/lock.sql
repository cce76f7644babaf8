-- The first statement of a limited claim: lock the limit rows of the messages' kinds, in
-- kind order (two workers never wait on each other in a cycle). Until the claim commits,
-- no other claim of these kinds starts, and the claim's next statement sees every start
-- committed before the lock was granted.
-- $1 task ids (uuid[])
SELECT l.kind
FROM kind_limits l
WHERE l.kind IN (SELECT t.kind FROM tasks t WHERE t.id = ANY($1::uuid[]))
ORDER BY l.kind
FOR UPDATE OF l;
