-- Plan outbox/claim_due, in its transaction, for the tables as they are and with
-- index scans only: its batch from outbox_due_idx in order, each task by primary
-- key, and the foreign-key checks of the events its triggers insert planned afresh
-- (a plan cached while `tasks` was small reads the whole table for every row).
-- Plan: see docs/design.md, "Query plans".
-- (no parameters)
SELECT set_config('plan_cache_mode', 'force_custom_plan', true),
       set_config('enable_seqscan', 'off', true),
       set_config('enable_bitmapscan', 'off', true);
