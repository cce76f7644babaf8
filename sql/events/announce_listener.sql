-- This API process has open streams: (re)write its stream_listeners row so
-- writers announce their status changes (events/announce.sql) for the next
-- $2 seconds. Returns, as of this statement's snapshot, the newest event id
-- (where the process starts reading) and the ids among the $3 before it that
-- are not visible: transactions still open may commit them after the row,
-- so the process looks for them too.
-- Plan: see docs/design.md, "Query plans".
-- $1 listener id (one per API process), $2 seconds until the row expires,
-- $3 how many ids before the newest to check (0: none)
WITH latest AS (
    SELECT coalesce(max(id), 0) AS id FROM task_events
)
INSERT INTO stream_listeners AS l (listener, expires_at)
VALUES ($1, now() + make_interval(secs => $2))
ON CONFLICT (listener) DO UPDATE SET expires_at = excluded.expires_at
RETURNING (SELECT id FROM latest) AS latest_id,
          ARRAY(SELECT g.id
                FROM latest, generate_series(greatest(latest.id - $3 + 1, 1), latest.id) AS g(id)
                WHERE NOT EXISTS (SELECT 1 FROM task_events AS e
                                  WHERE e.id = g.id AND e.id > (SELECT id FROM latest) - $3)
                ORDER BY g.id) AS missing_ids;
