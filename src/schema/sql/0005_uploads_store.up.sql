-- pgferry schema, version 4: what seed 000's upload store holds per user
-- besides its documents. `unique_standards` is a set the app kept per user
-- key and never shrank when old documents fell off the 50-entry list, so it
-- cannot be recomputed from the imported uploads: it is kept as written.

create table upload_user_standards (
  user_id           text primary key,
  unique_standards  jsonb not null default '[]'::jsonb,
  source            text,
  created_at        timestamptz not null default now(),
  updated_at        timestamptz not null default now()
);
