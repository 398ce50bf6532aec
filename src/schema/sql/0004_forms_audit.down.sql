-- Reverses 0004_forms_audit.up.sql: DELETE and TRUNCATE on audit_logs are
-- allowed again (UPDATE stays refused, as in version 1).
drop index if exists jobs_finished_idx;
drop function if exists pgferry_audit_purge(timestamptz);
drop trigger if exists audit_logs_no_truncate on audit_logs;
drop trigger if exists audit_logs_no_delete on audit_logs;
create or replace function audit_logs_append_only() returns trigger language plpgsql as $$
begin
  raise exception 'audit_logs is append-only' using errcode = '42501';
end;
$$;
