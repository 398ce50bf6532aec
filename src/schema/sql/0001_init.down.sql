-- Reverses 0001_init.up.sql. Destroys every pgferry table and its data,
-- which is why `pgferry db down` refuses to run without --yes.
drop view if exists file_move_progress;
drop table if exists file_moves;
drop table if exists import_log;
drop trigger if exists audit_logs_no_update on audit_logs;
drop table if exists audit_logs;
drop function if exists audit_logs_append_only();
drop table if exists submission_files;
drop table if exists jobs;
drop table if exists submissions;
drop table if exists uploads;
drop table if exists usage;
drop table if exists messages;
drop table if exists conversations;
drop table if exists users;
