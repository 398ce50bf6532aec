-- Reverses 0006_cutover.up.sql: record versions are dropped
-- (writers then apply unconditionally, as before version 4).
alter table import_log drop column if exists source_version;
