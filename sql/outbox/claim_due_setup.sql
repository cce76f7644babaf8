-- Set up outbox/claim_due's transaction, before it:
-- * plan the claim for the tables as they are and with index scans only: its
--   batch from outbox_due_idx in order, each task by primary key, and the
--   foreign-key checks of the events its triggers insert planned afresh (a plan
--   cached while `tasks` was small reads the whole table for every row);
-- * commit without waiting for the WAL flush (it sits between a create and its
--   message). A claim lost in a database crash leaves its rows due and its tasks
--   NEW, so they are published again and the worker skips the duplicates; any
--   later synchronous commit, such as a worker's claim of one of its tasks,
--   flushes it first.
-- Plan: see docs/design.md, "Query plans".
-- (no parameters)
SELECT set_config('plan_cache_mode', 'force_custom_plan', true),
       set_config('enable_seqscan', 'off', true),
       set_config('enable_bitmapscan', 'off', true),
       set_config('synchronous_commit', 'off', true);
