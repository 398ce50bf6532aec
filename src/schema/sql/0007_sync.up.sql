-- pgferry schema, version 4: `pgferry sync` (docs/migrating.md, "Apps in any
-- language"). sync follows the app's JSON tree and imports each changed file
-- through the import engine, so import_log stays the one record of what is
-- loaded; it gains the file's size and modification time as sync last loaded
-- it, so a restarted sync reads only the files changed since (no full
-- re-import, no re-hash of the whole tree).
alter table import_log
  add column source_size bigint,
  add column source_mtime_ns bigint;
-- sync maps a changed or deleted path to its record through `source`.
create index import_log_source_idx on import_log (source);

-- One row per followed source directory: what `pgferry cutover status` shows
-- as the sync lag. Written by the sync process every few seconds and at stop.
create table sync_state (
  source_dir      text primary key,            -- absolute path of the followed tree
  following       boolean not null default false,  -- true while a `sync --follow` runs
  pid             integer,
  host            text,
  started_at      timestamptz not null default now(),
  last_event_at   timestamptz,                 -- last filesystem event seen
  last_scan_at    timestamptz,                 -- last full rescan (the safety net) finished
  last_import_at  timestamptz,                 -- last change committed
  lag_ms          double precision,            -- write (file mtime) -> committed, of the last change
  lag_p50_ms      double precision,            -- over the last 1000 changes
  lag_p99_ms      double precision,
  pending         integer not null default 0,  -- changed paths not yet committed
  oldest_pending_ms double precision,          -- age of the oldest of them (0 when none)
  imported        bigint not null default 0,   -- records inserted or updated since start
  deleted         bigint not null default 0,   -- records removed because their file was deleted
  errors          bigint not null default 0,   -- files rejected or failed passes since start
  last_error      text,
  updated_at      timestamptz not null default now()
);
