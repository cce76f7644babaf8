-- Re-dispatch PENDING tasks whose message RabbitMQ lost after confirming it (a
-- purged queue, a lost node, a dead-lettering policy): a fresh outbox row, due
-- now, for each task whose outbox rows are all published, the latest of them
-- more than $1 seconds ago (or, when retention deleted them, that became
-- PENDING that long ago). Only for tasks of the queues $3, those whose RabbitMQ
-- queue holds no ready message: behind a deep backlog an old publish is normal
-- (dispatcher.redispatch_lost_once).
-- The task stays PENDING; its old message, should it reappear, is stale
-- (tasks/claim).
-- Guard: PENDING only, FOR UPDATE SKIP LOCKED, so sweepers take disjoint tasks
-- and a task a worker is claiming right now is skipped.
-- Plan: see docs/design.md, "Query plans".
-- $1 seconds since the last publish, $2 batch size, $3 task queues (text[])
WITH lost AS (
    SELECT t.id, t.priority
    FROM tasks t
    WHERE t.status = 'PENDING'
      AND t.queue = ANY ($3)
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
