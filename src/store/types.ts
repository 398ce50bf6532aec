import type { StorageMode, Tier } from '../config.ts';
import type { Database } from '../db/database.ts';
import type {
  AssistantMessage,
  AssistantMessageInput,
  Conversation,
  ConversationSummary,
  Page,
  UserMessage,
} from '../domain/conversations.ts';
import type {
  Actor,
  AuditEntry,
  AuditFilter,
  AuditInput,
  Job,
  NewSubmission,
  NewUploadedFile,
  Submission,
  SubmissionFilter,
  SubmissionStatus,
  UploadedFile,
} from '../domain/forms.ts';
import type { ConsumeResult, UsageStatus } from '../domain/usage.ts';
import type { UploadRepository } from './core/uploads.ts';

export type { UploadRepository } from './core/uploads.ts';

/**
 * The Store: one interface per repository, implemented once in the core
 * (store/core/*: validation, limits, cursors, domain objects) over a thin
 * backend (store/json/*, store/postgres/*: storage primitives). Every method takes the acting user's id
 * and never returns another user's data: a record owned by someone else is
 * NOT_FOUND, exactly like a record that does not exist.
 *
 * Errors are PgFerryError with a stable code (src/errors.ts):
 * INVALID_INPUT for a bad id/argument (checked before any path or query is
 * built), NOT_FOUND, CONFLICT (create with an id that exists), UNPROCESSABLE
 * (unknown tier), UNAVAILABLE (database down), CORRUPT_DATA (unreadable file).
 */

export interface GetConversationOptions {
  /** Messages per call, oldest first; default and maximum 1000. */
  messagesLimit?: number;
  messagesCursor?: string;
}

export interface ListOptions {
  /** Default 50, maximum 100. */
  limit?: number;
  cursor?: string;
}

export interface SendUserMessageOptions {
  /** Queries to count against the quota; default 1. */
  consume?: number;
}

export interface SentUserMessage {
  /** Null when the quota refused the send; then nothing was written. */
  message: UserMessage | null;
  usage: ConsumeResult;
}

export interface ConversationRepository {
  create(userId: string, input?: { id?: string; title?: string }): Promise<Conversation>;
  get(userId: string, id: string, options?: GetConversationOptions): Promise<Conversation>;
  /** Newest-updated first; keyset pagination on (updatedAt, id). */
  list(userId: string, options?: ListOptions): Promise<Page<ConversationSummary>>;
  addUserMessage(userId: string, id: string, content: string): Promise<UserMessage>;
  /**
   * Send a user message: check the conversation is the caller's, count
   * `consume` queries (default 1) and append, as one atomic step. NOT_FOUND
   * counts nothing; a refused quota appends nothing (`message: null`).
   */
  sendUserMessage(userId: string, id: string, content: string, options?: SendUserMessageOptions): Promise<SentUserMessage>;
  addAssistantMessage(userId: string, id: string, input: AssistantMessageInput): Promise<AssistantMessage>;
  updateTitle(userId: string, id: string, title: string): Promise<ConversationSummary>;
  /** Removes the conversation and its messages. */
  delete(userId: string, id: string): Promise<void>;
  /** Case-insensitive substring match on title and user message content; newest-updated first. */
  search(userId: string, text: string, options?: { limit?: number }): Promise<ConversationSummary[]>;
}

export interface UsageRepository {
  get(userId: string): Promise<UsageStatus>;
  /** Check and count `n` queries in one atomic step; nothing is counted when not allowed. */
  consume(userId: string, n?: number): Promise<ConsumeResult>;
  setTier(userId: string, tier: Tier): Promise<UsageStatus>;
}

// ---- seed 002: the forms app (domain/forms.ts) ----------------------------------------
//
// These take an Actor: a user sees only their own submissions (and their
// jobs and files); a submission without a user (the app's JSON era) only an
// admin. Every change writes its audit entry in the same transaction
// (PostgreSQL) or critical section (JSON) when the audit log is on the same
// backend; in hybrid mode it is recorded right after (docs/decisions.md).

export interface SubmissionListOptions extends SubmissionFilter {
  /** Default 50, maximum 100. */
  limit?: number;
  cursor?: string;
}

export interface SubmissionRepository {
  /** The submission is the actor's (userId) unless `userId` is given by an admin (null: no user, the app's own). */
  create(actor: Actor, input: NewSubmission & { userId?: string | null }): Promise<Submission>;
  get(actor: Actor, id: string): Promise<Submission>;
  /** Newest-created first; keyset pagination on (createdAt, id). */
  list(actor: Actor, options?: SubmissionListOptions): Promise<Page<Submission>>;
  updateStatus(actor: Actor, id: string, status: SubmissionStatus): Promise<Submission>;
  /** Removes the submission, its jobs and its files. */
  delete(actor: Actor, id: string): Promise<void>;
}

export interface JobRepository {
  /** A job of a submission the actor sees, state `started`, progress 0 (the app's mark_job_started). */
  create(actor: Actor, submissionId: string, meta?: Record<string, unknown>): Promise<Job>;
  get(actor: Actor, id: string): Promise<Job>;
  /** started → running. */
  start(actor: Actor, id: string): Promise<Job>;
  /** 0–100, never lower than now; a started job becomes running. */
  progress(actor: Actor, id: string, progress: number): Promise<Job>;
  /** → done, progress 100, with the results the app's frontends read. */
  finish(actor: Actor, id: string, results: unknown): Promise<Job>;
  /** → failed, `results: {error}`. */
  fail(actor: Actor, id: string, error: string): Promise<Job>;
  /** Oldest first. */
  listBySubmission(actor: Actor, submissionId: string): Promise<Job[]>;
  /**
   * The 7-day retention of the seed's hybrid option: removes done and failed
   * jobs that finished (or, without a finish time, were created) more than
   * `olderThan` (ms or "7d") ago; never a started or running one.
   */
  purgeFinished(olderThan: number | string, actor?: Actor): Promise<{ purged: number; before: string }>;
}

export interface UploadedFileRepository {
  add(actor: Actor, submissionId: string, file: NewUploadedFile): Promise<UploadedFile>;
  /** Oldest first. */
  list(actor: Actor, submissionId: string): Promise<UploadedFile[]>;
}

export interface AuditListOptions extends AuditFilter {
  /** Default 50, maximum 100. */
  limit?: number;
  cursor?: string;
}

/** Append-only: there is no update or delete (PostgreSQL refuses both; docs/storage.md for the operator's purge). */
export interface AuditRepository {
  record(entry: Partial<AuditInput> & { action: string }): Promise<AuditEntry>;
  /** Newest first. Admin data: the caller checks the role. */
  list(options?: AuditListOptions): Promise<Page<AuditEntry>>;
}

/** The repositories a write runs on; inside `IdempotencyRepository.run` they commit together with the key. */
export interface StoreScope {
  readonly conversations: ConversationRepository;
  readonly usage: UsageRepository;
}

/** An answer as the client received it: replayed byte for byte for a retry with the same key. */
export interface IdempotentAnswer {
  status: number;
  /** The serialized body (JSON text), or null for none (204). */
  body: string | null;
  /** Headers that belong to the answer (e.g. `location`). */
  headers: Record<string, string>;
}

export interface IdempotencyOutcome {
  /** True when the answer is the stored one of an earlier request with the same key: nothing ran now. */
  replayed: boolean;
  answer: IdempotentAnswer;
}

/** How long a key is remembered (Stripe's 24 hours). */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

/**
 * Idempotency keys (the REST API's `Idempotency-Key`), per user. `run` does a
 * write at most once per (userId, key) within IDEMPOTENCY_TTL_MS:
 *
 * - first time: `work` runs on `scope` and its answer is recorded with the
 *   key in the same commit (PostgreSQL: one transaction; JSON: under the
 *   key's lock, before the answer is returned), so a write that committed
 *   always has its key, even when the answer is lost;
 * - same key, same `requestHash`: the first answer, `replayed: true`, nothing runs;
 * - same key, another `requestHash`: UNPROCESSABLE;
 * - same key while the first request still runs: CONFLICT.
 *
 * When `work` throws, nothing of it is kept and the key stays unused (a retry runs again).
 */
export interface IdempotencyRepository {
  run(
    userId: string,
    key: string,
    requestHash: string,
    work: (scope: StoreScope) => Promise<IdempotentAnswer>,
  ): Promise<IdempotencyOutcome>;
}

export type BackendName = 'json' | 'postgres';

export interface StoreHealth {
  ok: boolean;
  backend: BackendName;
  mode: StorageMode;
  /** Why not ok, without secrets. */
  error?: string;
}

export interface Store {
  readonly backend: BackendName;
  readonly mode: StorageMode;
  readonly conversations: ConversationRepository;
  readonly usage: UsageRepository;
  readonly submissions: SubmissionRepository;
  readonly jobs: JobRepository;
  readonly uploadedFiles: UploadedFileRepository;
  readonly audit: AuditRepository;
  /** Upload metadata (seeds 000, 004); the bytes are in object storage (src/objects). */
  readonly uploads: UploadRepository;
  readonly idempotency: IdempotencyRepository;
  health(): Promise<StoreHealth>;
  close(): Promise<void>;
  /** The PostgreSQL database the store runs on (absent on JSON files): the admin page and /metrics read its pool and history. */
  readonly database?: Database;
}

/** Injectable clock: JSON backend periods and timestamps; tests move time. */
export type Clock = () => Date;
export const systemClock: Clock = () => new Date();
