-- Reverses 0003_idempotency.up.sql: the recorded keys are dropped (a retry
-- after the downgrade runs again, as it did before version 3).
drop table if exists idempotency_keys;
