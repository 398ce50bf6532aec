-- pgferry schema, version 4: seed 002's audit log is append-only for DELETE
-- and TRUNCATE too (UPDATE is refused since version 1). The one way to remove
-- entries is the operator's retention purge, pgferry_audit_purge(before),
-- also run by `pgferry audit purge --before <date>` (docs/storage.md). It is
-- a guard against mistakes and stray writers, not against a superuser.

create or replace function audit_logs_append_only() returns trigger language plpgsql as $$
begin
  -- Only pgferry_audit_purge sets this (transaction-local) mark.
  if tg_op = 'DELETE' and current_setting('pgferry.audit_purge', true) = 'on' then
    return old;
  end if;
  raise exception 'audit_logs is append-only (use pgferry_audit_purge(before) for retention)' using errcode = '42501';
end;
$$;

create trigger audit_logs_no_delete before delete on audit_logs
  for each row execute function audit_logs_append_only();
create trigger audit_logs_no_truncate before truncate on audit_logs
  for each statement execute function audit_logs_append_only();

-- Removes the entries older than `before`; returns how many.
create function pgferry_audit_purge(before timestamptz) returns bigint language plpgsql as $$
declare
  removed bigint;
begin
  perform set_config('pgferry.audit_purge', 'on', true);
  delete from audit_logs where created_at < before;
  get diagnostics removed = row_count;
  perform set_config('pgferry.audit_purge', '', true);
  return removed;
end;
$$;

-- The retention purge of finished jobs (jobs.purgeFinished) scans only finished rows.
create index jobs_finished_idx on jobs ((coalesce(completed_at, created_at))) where status in ('done', 'failed');
