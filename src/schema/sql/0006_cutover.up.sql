-- pgferry schema, version 4: the zero-downtime cutover (docs/migrating.md).
--
-- import_log.source_version: when the source file was read (microseconds
-- since the epoch, taken just before the read). Every writer of a record from
-- the JSON tree — `pgferry import`, `sync`, and the dual-write mirror of
-- STORAGE_MODE=dual / postgres-fallback — first claims the record's row here
-- with its version, in the same transaction as the write, and writes only when
-- its version is newer than the stored one. So an import that read a file
-- before the app changed it can never overwrite the newer copy the mirror
-- already wrote: PostgreSQL is never older than the files.
alter table import_log add column source_version bigint;

-- The result of each `pgferry verify` run, for `pgferry cutover status`
-- ("verify is 3 days old: run pgferry verify before switching reads").
create table verify_runs (
  id           bigint generated always as identity primary key,
  source       text not null,                 -- the --from directory
  kinds        text[] not null,
  clean        boolean not null,
  -- Per kind: source, matched, missing, different, extra, unreadable.
  summary      jsonb not null,
  started_at   timestamptz not null,
  finished_at  timestamptz not null default now()
);
create index verify_runs_finished_idx on verify_runs (finished_at desc);
