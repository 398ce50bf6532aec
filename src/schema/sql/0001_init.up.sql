-- pgferry schema, version 1: every table of DESIGN.md section 4.
-- Runs inside one transaction (the runner wraps it); never drops data.
--
-- User ids are text: they are the `sub` of the caller's auth provider
-- (Firebase uid, Auth0 subject, an email in the seed-000 upload store), so
-- data tables do not reference `users` by foreign key — a user row is profile
-- information that may arrive after their data (docs/decisions.md).

create table users (
  id          text primary key,
  email       text unique,
  full_name   text,
  role        text not null default 'user',
  created_at  timestamptz not null default now(),
  last_login  timestamptz
);

-- Chat app (seeds 001, 003) ------------------------------------------------

create table conversations (
  id             text primary key,
  user_id        text not null,
  title          text not null default 'New Conversation',
  created_at     timestamptz not null default now(),
  updated_at     timestamptz not null default now(),
  -- Denormalised so list() needs no count(*) per row and appends can take the
  -- next position atomically under the conversation's row lock.
  message_count  integer not null default 0 check (message_count >= 0)
);
-- list(): newest-updated first, keyset on (updated_at, id).
create index conversations_user_updated_idx on conversations (user_id, updated_at desc, id desc);
create index conversations_user_created_idx on conversations (user_id, created_at desc);

create table messages (
  id               bigint generated always as identity primary key,
  conversation_id  text not null references conversations (id) on delete cascade,
  position         integer not null check (position >= 0),
  role             text not null check (role in ('user', 'assistant')),
  content          text,
  stage1           jsonb,
  stage2           jsonb,
  stage3           jsonb,
  metadata         jsonb,
  created_at       timestamptz not null default now(),
  constraint messages_conversation_position_key unique (conversation_id, position)
);
create index messages_created_at_idx on messages (created_at);

create table usage (
  user_id             text primary key,
  tier                text not null default 'free' check (tier in ('free', 'pro', 'enterprise')),
  daily_used          integer not null default 0 check (daily_used >= 0),
  daily_limit         integer check (daily_limit >= 0),      -- null = unlimited
  monthly_used        integer not null default 0 check (monthly_used >= 0),
  monthly_limit       integer check (monthly_limit >= 0),    -- null = unlimited
  total_queries       bigint not null default 0 check (total_queries >= 0),
  last_reset_daily    date not null default (now() at time zone 'utc')::date,
  last_reset_monthly  date not null default date_trunc('month', now() at time zone 'utc')::date,
  created_at          timestamptz not null default now(),
  updated_at          timestamptz not null default now()
);

-- Uploads (seeds 000, 004) ----------------------------------------------------

create table uploads (
  id                 uuid primary key,
  user_id            text not null,
  filename           text not null,
  original_filename  text,
  storage            text not null default 'local' check (storage in ('local', 's3', 'external')),
  bucket             text,
  file_key           text,
  url                text,
  content_type       text,
  file_size          bigint not null default 0 check (file_size >= 0),
  sha256             text,
  fingerprint        text,
  doc_type           text,
  standards_mapped   jsonb,
  upload_type        text not null default 'document'
                     check (upload_type in ('avatar', 'document', 'image', 'report', 'ai-generated')),
  is_public          boolean not null default false,
  status             text not null default 'active' check (status in ('pending', 'active', 'deleted', 'failed')),
  metadata           jsonb,
  uploaded_at        timestamptz not null default now(),
  expires_at         timestamptz,
  created_at         timestamptz not null default now(),
  updated_at         timestamptz not null default now()
);
-- Seed 004's indexes (partner_id has no counterpart here) plus list() keyset.
create index idx_user_uploads_user_id on uploads (user_id);
create index idx_user_uploads_type on uploads (upload_type);
create index idx_user_uploads_expires on uploads (expires_at) where expires_at is not null;
create index idx_user_uploads_bucket on uploads (bucket);
create index idx_user_uploads_uploaded_at on uploads (uploaded_at);
create index uploads_user_uploaded_idx on uploads (user_id, uploaded_at desc, id desc);
create index uploads_user_doc_type_idx on uploads (user_id, doc_type);

-- Forms app (seed 002) ------------------------------------------------------------

create table submissions (
  id               bigint generated always as identity primary key,
  submission_id    text not null unique,        -- sub_<hex>
  module           text not null,               -- hvac_mep, civil, cleaning, …
  user_id          text,
  status           text not null default 'pending'
                   check (status in ('pending', 'processing', 'completed', 'failed')),
  site_name        text,
  visit_date       date,
  form_data        jsonb not null,              -- the whole original document
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now(),
  submitted_by_ip  text
);
create index idx_module on submissions (module);
create index idx_status on submissions (status);
create index idx_visit_date on submissions (visit_date);
create index idx_created_at on submissions (created_at);
create index idx_submissions_module_date on submissions (module, visit_date desc);
create index idx_submissions_status_created on submissions (status, created_at desc);
create index submissions_user_idx on submissions (user_id, created_at desc);

create table jobs (
  id             bigint generated always as identity primary key,
  job_id         text not null unique,          -- job_<hex>
  submission_id  bigint references submissions (id) on delete cascade,
  status         text not null check (status in ('started', 'running', 'done', 'failed')),
  progress       integer not null default 0 check (progress between 0 and 100),
  results        jsonb,
  excel_url      text,
  pdf_url        text,
  error_message  text,
  meta           jsonb,
  created_at     timestamptz not null default now(),
  started_at     timestamptz,
  completed_at   timestamptz,
  updated_at     timestamptz not null default now()
);
create index idx_jobs_submission_id on jobs (submission_id);
create index idx_jobs_status on jobs (status);
create index idx_jobs_submission_status on jobs (submission_id, status);
create index jobs_created_at_idx on jobs (created_at);   -- purgeJobs(olderThan)

create table submission_files (
  id                 bigint generated always as identity primary key,
  submission_id      bigint not null references submissions (id) on delete cascade,
  field              text,
  url                text not null,
  public_id          text,
  file_type          text,                          -- photo, signature, report
  original_filename  text,
  file_size          bigint check (file_size >= 0),
  is_cloud           boolean not null default false,
  uploaded_at        timestamptz not null default now()
);
create index idx_submission_files_submission_id on submission_files (submission_id);

-- Audit log (seed 002): append-only ------------------------------------------------

create table audit_logs (
  id             bigint generated always as identity primary key,
  user_id        text,
  action         text not null,
  resource_type  text,
  resource_id    text,
  details        jsonb,
  ip_address     text,
  user_agent     text,
  created_at     timestamptz not null default now()
);
create index idx_audit_user_id on audit_logs (user_id, created_at desc);
create index idx_audit_action on audit_logs (action);
create index idx_audit_created_at on audit_logs (created_at);

create function audit_logs_append_only() returns trigger language plpgsql as $$
begin
  raise exception 'audit_logs is append-only' using errcode = '42501';
end;
$$;
create trigger audit_logs_no_update before update on audit_logs
  for each row execute function audit_logs_append_only();

-- Transfer bookkeeping --------------------------------------------------------------

-- One row per source record ever imported: the content hash makes re-runs
-- idempotent (unchanged records are skipped) and verify cheap.
create table import_log (
  kind          text not null,                 -- conversation, usage, submission, job, upload
  record_key    text not null,                 -- the record's id in its kind
  source        text not null,                 -- file path relative to the import root
  content_hash  text,
  status        text not null check (status in ('inserted', 'updated', 'unchanged', 'rejected', 'pruned')),
  error         text,
  imported_at   timestamptz not null default now(),
  primary key (kind, record_key)
);
create index import_log_status_idx on import_log (status);

-- Like seed 004's s3_migration_log: one row per object moved between stores.
create table file_moves (
  id             bigint generated always as identity primary key,
  table_name     text not null,
  record_id      text not null,
  source_store   text not null,
  target_store   text not null,
  old_key        text,
  new_key        text,
  old_url        text,
  new_url        text,
  size           bigint,
  sha256         text,
  status         text not null default 'pending'
                 check (status in ('pending', 'migrated', 'failed', 'skipped')),
  error_message  text,
  attempts       integer not null default 0,
  migrated_at    timestamptz,
  created_at     timestamptz not null default now(),
  updated_at     timestamptz not null default now(),
  constraint file_moves_record_key unique (table_name, record_id)
);
create index file_moves_status_idx on file_moves (status);

create view file_move_progress as
  select table_name,
         status,
         count(*)          as objects,
         coalesce(sum(size), 0) as bytes,
         min(created_at)   as first_entry,
         max(migrated_at)  as last_migration
    from file_moves
   group by table_name, status;
