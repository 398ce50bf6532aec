-- pgferry schema, version 3: Idempotency-Key records of the REST API
-- (docs/http-api.md, "Safe retries"). A row is written in the same
-- transaction as the write it answers, so a committed write always has its
-- key: a client that lost the answer (503 during a restart) and retries with
-- the same key gets the first answer back and nothing is written again.
-- Keys are per user: the primary key is (user_id, key).

create table idempotency_keys (
  user_id text not null,
  key text not null,
  -- sha256 of method, path and canonical body: the same key with another request is refused.
  request_hash text not null,
  -- The first answer, replayed as sent: HTTP status, body text (null when none), selected headers.
  status_code integer not null,
  response_body text,
  response_headers jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  primary key (user_id, key)
);

-- Expired keys are purged lazily, a few at a time, in expiry order.
create index idempotency_keys_expires_at_idx on idempotency_keys (expires_at);
