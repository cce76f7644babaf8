-- For the rest of this transaction, plan with index scans only (no sequential or
-- bitmap scans), so outbox/claim_due reads its batch from outbox_due_idx in order
-- and each task by primary key whatever the statistics say.
-- Plan: see docs/design.md, "Query plans".
-- (no parameters)
SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true);
