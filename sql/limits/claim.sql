-- Start attempts of limited kinds, their limit rows locked (limits/lock) in the same
-- transaction. Per kind, the first messages of the batch start while the kind has a free
-- slot (`concurrency` minus its running attempts) and a whole token (the bucket refilled
-- to now); the others stay PENDING and come due again through a new outbox row (which
-- makes their message stale): after the retry delay times the task's refusals so far
-- (at most 60), so a long backlog is not tried over and over, and for the rate not
-- before its token is due. Guards as tasks/claim; a kind without a limit row starts freely.
-- Returns one row per claimed task, with the outbox id of the message that claimed it
-- and its parents' results, as tasks/claim does.
-- $1 task ids (uuid[]), $2 the outbox id each message came from (bigint[], same order),
-- $3 worker id, $4 lease seconds, $5 retry delay in seconds (up to twice that, with jitter)
WITH clock AS MATERIALIZED (
    -- read after the lock: the bucket and started_at share it
    SELECT clock_timestamp() AS at
), message AS (
    SELECT m.task_id, m.outbox_id, m.position, t.kind, t.priority, coalesce(w.refusals, 0) AS refusals
    FROM unnest($1::uuid[], $2::bigint[]) WITH ORDINALITY AS m (task_id, outbox_id, position)
    JOIN tasks t ON t.id = m.task_id
    LEFT JOIN kind_limit_waits w ON w.task_id = m.task_id
    WHERE CASE t.status WHEN 'NEW' THEN true WHEN 'PENDING' THEN true ELSE false END
      AND t.attempts < t.max_attempts
      AND (SELECT count(*) FROM outbox o WHERE o.task_id = m.task_id AND o.id > m.outbox_id) = 0
), kind_limit AS (
    SELECT l.kind, l.concurrency, l.rate_per_second,
           l.concurrency - (SELECT count(*) FROM tasks r WHERE r.kind = l.kind AND r.status = 'IN_PROGRESS')
               AS free_slots,
           least(l.capacity, l.tokens + greatest(0, extract(epoch FROM clock.at - l.updated_at)) * l.rate_per_second)
               AS tokens
    FROM kind_limits l CROSS JOIN clock
    WHERE l.kind IN (SELECT kind FROM message)
), verdict AS (
    SELECT m.task_id, m.outbox_id, m.kind, m.priority, m.refusals, l.tokens, l.rate_per_second, n,
           (l.free_slots IS NULL OR n <= l.free_slots) AND (l.tokens IS NULL OR n <= floor(l.tokens)) AS admitted
    FROM (SELECT message.*, row_number() OVER (PARTITION BY kind ORDER BY position) AS n FROM message) m
    LEFT JOIN kind_limit l ON l.kind = m.kind
), claimed AS (
    UPDATE tasks t
    SET status = 'IN_PROGRESS',
        attempts = t.attempts + 1,
        started_at = clock.at,
        worker_id = $3,
        lease_expires_at = now() + make_interval(secs => $4),
        error = NULL,
        updated_at = now()
    FROM verdict v CROSS JOIN clock
    WHERE t.id = v.task_id
      AND v.admitted
      AND CASE t.status WHEN 'NEW' THEN true WHEN 'PENDING' THEN true ELSE false END
      AND t.attempts < t.max_attempts
    RETURNING t.*, v.outbox_id,
        (SELECT jsonb_object_agg(d.parent_id::text, p.result)
         FROM task_dependencies d
         JOIN tasks p ON p.id = d.parent_id
         WHERE d.task_id = t.id) AS parent_results
), spent AS (
    UPDATE kind_limits k
    SET tokens = l.tokens - (SELECT count(*) FROM verdict v WHERE v.kind = l.kind AND v.admitted),
        updated_at = clock.at
    FROM kind_limit l CROSS JOIN clock
    WHERE k.kind = l.kind
      AND l.tokens IS NOT NULL
), held AS (
    INSERT INTO outbox (task_id, priority, available_at)
    SELECT v.task_id, v.priority,
           clock.at + make_interval(secs => greatest(
               $5 * (1 + random()) * least(v.refusals + 1, 60),
               coalesce((v.n - v.tokens) / v.rate_per_second, 0)))  -- when its token is due
    FROM verdict v CROSS JOIN clock
    WHERE NOT v.admitted
), waiting AS (
    INSERT INTO kind_limit_waits (task_id, kind)
    SELECT task_id, kind FROM verdict WHERE NOT admitted
    ON CONFLICT (task_id) DO UPDATE SET refusals = kind_limit_waits.refusals + 1
), served AS (
    DELETE FROM kind_limit_waits
    WHERE task_id IN (SELECT id FROM claimed)
)
SELECT * FROM claimed;
