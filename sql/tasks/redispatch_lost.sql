-- Re-dispatch PENDING tasks whose message RabbitMQ lost after confirming it (the
-- queue was purged, a node lost a non-replicated queue, a policy dead-lettered
-- it): a fresh outbox row, due now, for each task whose outbox rows are all
-- published, the latest more than $1 seconds ago. A task whose rows retention
-- already deleted counts from when it became PENDING (updated_at). The caller
-- runs this only while the task queue holds no ready message: a publish long
-- ago alone is normal behind a deep backlog (dispatcher.redispatch_lost_once).
-- The task stays PENDING (no status change, so no task_events row); its old
-- message, should it reappear, is stale and claims nothing (tasks/claim takes a
-- message only from the task's newest outbox row). The guard: FOR UPDATE SKIP
-- LOCKED on the tasks, so two dispatchers sweeping at once take disjoint tasks
-- and a task a worker is claiming right now is skipped (once claimed, it is no
-- longer PENDING when the lock is taken). Each task's outbox rows are read
-- through outbox_task_idx; an aggregate, so no plan walks the outbox's key.
-- $1 seconds since the last publish, $2 batch size
WITH lost AS (
    SELECT t.id, t.priority
    FROM tasks t
    WHERE t.status = 'PENDING'
      AND (SELECT count(*) FILTER (WHERE o.published_at IS NULL) = 0
                  AND coalesce(max(o.published_at), t.updated_at) < now() - make_interval(secs => $1)
           FROM outbox o
           WHERE o.task_id = t.id)
    LIMIT $2
    FOR UPDATE OF t SKIP LOCKED
), redispatched AS (
    INSERT INTO outbox (task_id, priority)
    SELECT id, priority FROM lost
    RETURNING 1
)
SELECT count(*) FROM redispatched;
