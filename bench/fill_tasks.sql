-- The list benchmark's table: $1 tasks in one set-based INSERT, shaped like a month of a
-- busy service. Most tasks COMPLETED, some FAILED, CANCELLED, PENDING, NEW and IN_PROGRESS;
-- priorities mixed; created_at spread over 30 days in insertion order, as a live table
-- grows, so the physical order follows created_at (give or take a minute). Every row keeps
-- the table's CHECK constraints (finished_at iff terminal, lease iff IN_PROGRESS, result
-- only if COMPLETED).
-- Names and descriptions carry words to search for: each noun is in ~1/12 of the tasks
-- ("invoice"), each account tag (acct-00000 .. acct-19999) in ~1/20,000 of them.
-- The random draws come from the session's seed (setseed), so runs load the same data.
-- $1 number of tasks
INSERT INTO tasks (name, description, priority, status, kind, payload, result, error,
                   attempts, max_attempts, timeout_seconds, created_at, updated_at,
                   started_at, finished_at, cancel_requested_at, worker_id, lease_expires_at)
SELECT name, description, priority, status, kind, payload,
       CASE WHEN status = 'COMPLETED' THEN jsonb_build_object('ok', true, 'items', n % 100) END,
       CASE WHEN status = 'FAILED' THEN 'RuntimeError: upstream answered 503 Service Unavailable' END,
       CASE status WHEN 'COMPLETED' THEN 1 + (n % 10 = 0)::int
                   WHEN 'FAILED' THEN 3
                   WHEN 'IN_PROGRESS' THEN 1
                   ELSE 0 END,
       3, 300, created_at,
       coalesce(finished_at, started_at, created_at),
       started_at, finished_at,
       CASE WHEN status = 'CANCELLED' THEN finished_at END,
       CASE WHEN status = 'IN_PROGRESS' THEN 'bench-worker' END,
       CASE WHEN status = 'IN_PROGRESS' THEN now() + interval '5 minutes' END
FROM (
    SELECT n, name, description, priority, status, kind, payload, created_at,
           CASE WHEN status IN ('COMPLETED', 'FAILED', 'IN_PROGRESS') THEN created_at + waited END
               AS started_at,
           CASE WHEN status IN ('COMPLETED', 'FAILED') THEN created_at + waited + ran
                WHEN status = 'CANCELLED' THEN created_at + waited END AS finished_at
    FROM (
        SELECT n,
               verb || ' ' || noun || ' #' || n AS name,
               CASE WHEN draw_text < 0.9
                    THEN 'Nightly ' || noun || ' job for account acct-' || lpad((n % 20000)::text, 5, '0')
                         || ': ' || verb || ' it, then notify the owner.' END AS description,
               CASE WHEN draw_priority < 0.25 THEN 'LOW'
                    WHEN draw_priority < 0.80 THEN 'MEDIUM'
                    ELSE 'HIGH' END AS priority,
               CASE WHEN draw_status < 0.85 THEN 'COMPLETED'
                    WHEN draw_status < 0.90 THEN 'FAILED'
                    WHEN draw_status < 0.94 THEN 'CANCELLED'
                    WHEN draw_status < 0.97 THEN 'PENDING'
                    WHEN draw_status < 0.99 THEN 'NEW'
                    ELSE 'IN_PROGRESS' END AS status,
               (ARRAY['noop', 'sleep', 'email', 'report'])[1 + n % 4] AS kind,
               jsonb_build_object('account', n % 20000) AS payload,
               created_at, waited, ran
        FROM (
            -- One draw of each random value per task; volatile functions keep this
            -- subquery from being flattened, so each draw is made once.
            SELECT n,
                   (ARRAY['send', 'generate', 'sync', 'import', 'export', 'resize', 'rebuild',
                          'notify', 'charge', 'archive'])[1 + floor(random() * 10)::int] AS verb,
                   (ARRAY['invoice', 'report', 'thumbnail', 'user', 'order', 'email', 'backup',
                          'catalog', 'payment', 'webhook', 'search index', 'statement'])
                       [1 + floor(random() * 12)::int] AS noun,
                   random() AS draw_text,
                   random() AS draw_priority,
                   random() AS draw_status,
                   now() - interval '30 days' * (1 - n::float8 / $1) - random() * interval '1 minute'
                       AS created_at,
                   random() * interval '1 minute' AS waited,
                   random() * interval '5 minutes' AS ran
            FROM generate_series(1, $1::integer) AS n
        ) AS draws
    ) AS shaped
) AS timed;
