/**
 * pgferry's public API: re-exports only (STYLE.md, Kysely). Anything not
 * exported here is internal and may change.
 */
export { type Config, DEFAULT_TIER_LIMITS, loadConfig, type StorageMode, type Tier, type TierLimits } from './config.ts';
export { connectDatabase, Database } from './db/database.ts';
export type {
  AssistantMessage,
  AssistantMessageInput,
  Conversation,
  ConversationSummary,
  Message,
  Page,
  UserMessage,
} from './domain/conversations.ts';
export type {
  Actor,
  AuditEntry,
  AuditFilter,
  AuditInput,
  Job,
  JobState,
  NewSubmission,
  NewUploadedFile,
  Submission,
  SubmissionFilter,
  SubmissionStatus,
  UploadedFile,
} from './domain/forms.ts';
export type { ConsumeResult, UsageStatus, UsageWindow } from './domain/usage.ts';
export { ERROR_CODES, type ErrorCode, isPgFerryError, PgFerryError } from './errors.ts';
export { createLogger, redactSecrets, redactUrl } from './log.ts';
export { Migrator } from './schema/migrator.ts';
export { createJsonStore } from './store/json/index.ts';
export { type OpenStoreOptions, openStore } from './store/open.ts';
export { createPostgresStore } from './store/postgres/index.ts';
export type {
  AuditRepository,
  ConversationRepository,
  JobRepository,
  Store,
  StoreHealth,
  SubmissionRepository,
  UploadedFileRepository,
  UsageRepository,
} from './store/types.ts';
