-- Plan each statement of this transaction when it runs, the foreign-key checks its
-- triggers run included: a batch's checks planned while `tasks` was small (a cached
-- plan) read the whole table for every row the batch inserts.
-- Plan: see docs/design.md, "Query plans".
-- (no parameters)
SELECT set_config('plan_cache_mode', 'force_custom_plan', true);
