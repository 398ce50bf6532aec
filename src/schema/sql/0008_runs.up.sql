-- pgferry schema, version 4: run history (docs/admin.md). Every import,
-- verify, sync, files move and archive run records one row, so an operator
-- sees what ran, when, with what counts and where its report went, after the
-- process is gone. The first problems of a run are kept next to it for the
-- admin page; the report file (report_path) has them all.

create table runs (
  id           bigint generated always as identity primary key,
  command      text not null,                       -- import, verify, sync, files-move, archive
  source       text,                                -- what was read (a directory, a store); never a URL with a password
  dry_run      boolean not null default false,
  status       text not null default 'running'
               check (status in ('running', 'ok', 'failed', 'interrupted')),
  exit_code    integer,
  -- Per kind: {"conversation": {"read": 10, "inserted": 8, "updated": 0, "unchanged": 1, "rejected": 1}}.
  counts       jsonb not null default '{}'::jsonb,
  -- While running: {"done": records, "total": records}; the admin page draws it as a bar.
  progress     jsonb not null default '{}'::jsonb,
  problems     integer not null default 0,
  warnings     integer not null default 0,
  report_path  text,
  error        text,                                -- why a failed run failed (redacted)
  host         text,
  pid          integer,
  started_at   timestamptz not null default now(),
  -- Moves with every progress write: a 'running' row that stops moving belongs to a process that died.
  heartbeat_at timestamptz not null default now(),
  finished_at  timestamptz
);
create index runs_started_at_idx on runs (started_at desc);
create index runs_command_started_idx on runs (command, started_at desc);

create table run_problems (
  run_id    bigint not null references runs (id) on delete cascade,
  position  integer not null,
  kind      text not null,
  file      text,
  record    text,
  reason    text not null,
  severity  text not null check (severity in ('error', 'warning')),
  problem   text,                                  -- verify: missing | different | extra | unreadable
  primary key (run_id, position)
);
