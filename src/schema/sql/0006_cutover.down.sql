-- Reverses 0006_cutover.up.sql: verify history and record versions are dropped
-- (writers then apply unconditionally, as before version 4).
drop table if exists verify_runs;
alter table import_log drop column if exists source_version;
