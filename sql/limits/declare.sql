-- A starting worker's limits: write those it declares (keeping the bucket's tokens, up to
-- the new capacity) and drop the rows of kinds it knows without a limit. A full bucket for
-- a new rate. Returns the rows written.
-- $1 kinds (text[]), $2 their concurrency (int[], null: none), $3 their rate's count
-- (int[], null: none), $4 the rate's period in seconds (int[], same order),
-- $5 kinds declared without limits (text[])
WITH forgotten AS (
    DELETE FROM kind_limits
    WHERE kind = ANY($5::text[])
)
INSERT INTO kind_limits AS k (kind, concurrency, rate_limit, rate_period_seconds, tokens, updated_at)
SELECT d.kind, d.concurrency, d.rate_limit, d.rate_period_seconds,
       coalesce(greatest(1, d.rate_limit::double precision / d.rate_period_seconds), 0), clock_timestamp()
FROM unnest($1::text[], $2::int[], $3::int[], $4::int[]) AS d (kind, concurrency, rate_limit, rate_period_seconds)
ON CONFLICT (kind) DO UPDATE
SET concurrency = excluded.concurrency,
    rate_limit = excluded.rate_limit,
    rate_period_seconds = excluded.rate_period_seconds,
    -- a restart must not refill the bucket
    tokens = CASE WHEN k.rate_limit IS NULL THEN excluded.tokens ELSE least(k.tokens, excluded.tokens) END
RETURNING kind, concurrency, rate_limit, rate_period_seconds, tokens;
