-- Reverses 0004_sync.up.sql: the sync bookkeeping goes; imported records stay.
drop table if exists sync_state;
drop index if exists import_log_source_idx;
alter table import_log drop column if exists source_mtime_ns, drop column if exists source_size;
