-- migrate:up

-- Concurrency and rate limits per kind, shared by every worker. Workers write the limits
-- their handlers declare (or KIND_CONCURRENCY / KIND_RATE set) at start-up; a claim of a
-- limited kind locks its row, so claims of that kind are taken one transaction at a time
-- and each sees the others' committed starts. `tokens` is the rate's token bucket as of
-- `updated_at`: it refills at `rate_per_second` up to `capacity` (one second's worth, at
-- least one start).
CREATE TABLE kind_limits (
    kind text PRIMARY KEY CHECK (char_length(kind) BETWEEN 1 AND 100),
    concurrency integer CHECK (concurrency BETWEEN 1 AND 10000),
    rate_limit integer CHECK (rate_limit >= 1),
    rate_period_seconds integer CHECK (rate_period_seconds IN (1, 60, 3600)),
    rate_per_second double precision GENERATED ALWAYS AS (rate_limit::double precision / rate_period_seconds) STORED,
    capacity double precision
        GENERATED ALWAYS AS (greatest(1, rate_limit::double precision / rate_period_seconds)) STORED,
    tokens double precision NOT NULL DEFAULT 0 CHECK (tokens >= 0),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT rate_has_period CHECK ((rate_limit IS NULL) = (rate_period_seconds IS NULL)),
    CONSTRAINT limits_something CHECK (concurrency IS NOT NULL OR rate_limit IS NOT NULL)
);

-- The tasks a limit sent back to wait (PENDING, with a delayed outbox row): the backlog
-- GET /api/v1/stats shows per kind, and how often each was refused (each refusal delays
-- the next try a little longer). A claim of the task removes its row.
CREATE TABLE kind_limit_waits (
    task_id uuid PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    kind text NOT NULL,
    refusals integer NOT NULL DEFAULT 1 CHECK (refusals >= 1),
    since timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX kind_limit_waits_kind_idx ON kind_limit_waits (kind);

-- What a limited claim counts: the running attempts of one kind. Partial, so it holds only
-- the running tasks (a small index, written once per claim and lease renewal).
CREATE INDEX tasks_running_kind_idx ON tasks (kind) WHERE status = 'IN_PROGRESS';

-- migrate:down

DROP INDEX tasks_running_kind_idx;
DROP TABLE kind_limit_waits;
DROP TABLE kind_limits;
