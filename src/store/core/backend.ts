import type { Tier } from '../../config.ts';
import type { AssistantMessageInput, ConversationSummary } from '../../domain/conversations.ts';
import type { Periods, UsageCounters } from '../../domain/usage.ts';
import type { ListKey } from './cursors.ts';

/**
 * What a backend implements: storage primitives only. The core
 * (store/core/conversations.ts, usage.ts) validates every argument, clamps
 * limits, decodes and encodes cursors and builds the domain objects before
 * and after these calls, so a backend trusts its arguments and reports
 * "not there" as `undefined`/`false`, never as an error of its own.
 */

/** A message as stored, decoded from the storage format (JSONB tags, file timestamps) but not yet a domain object. */
export interface StoredMessage {
  position: number;
  role: 'user' | 'assistant';
  content?: unknown;
  stage1?: unknown;
  stage2?: unknown;
  stage3?: unknown;
  metadata?: unknown;
  /** ISO 8601 UTC (ms), or null when the source had none. */
  createdAt: string | null;
}

/** A summary as list() sees it: with the microsecond keyset of its position. */
export interface ListedSummary extends ConversationSummary {
  updatedKey: string;
}

export type NewMessage = { role: 'user'; content: string } | ({ role: 'assistant' } & AssistantMessageInput);

/** Where an appended message landed. */
export interface Appended {
  position: number;
  createdAt: string;
}

/** Stored counters (not yet rolled to the current periods) and the periods of "now". */
export interface UsageState {
  counters: UsageCounters;
  periods: Periods;
}

/** An append refused because the conversation already holds as much as one may (domain/limits.ts). */
export interface ConversationFull {
  full: 'messages' | 'bytes';
}

export interface ConsumeState extends UsageState {
  allowed: boolean;
}

export interface CountedAppend {
  usage: ConsumeState;
  /** Null when the quota refused: nothing was appended. */
  appended: Appended | null;
}

export interface ConversationBackend {
  /** Undefined when the id is taken. */
  insert(userId: string, id: string, title: string): Promise<ConversationSummary | undefined>;
  /**
   * The user's conversation and its messages from position `from`, oldest
   * first: at most `count`, and no more once their sizes (domain/limits.ts)
   * would pass `maxBytes` — but always the first one. Only the page is loaded.
   */
  read(
    userId: string,
    id: string,
    from: number,
    count: number,
    maxBytes: number,
  ): Promise<{ summary: ConversationSummary; messages: StoredMessage[] } | undefined>;
  /** Up to `count` of the user's conversations strictly after `after` in keyset order (compareListKeys). */
  listAfter(userId: string, after: ListKey | null, count: number): Promise<ListedSummary[]>;
  /**
   * Append at the next position and bump updatedAt; undefined when not the
   * user's conversation; ConversationFull (nothing written) when a message of
   * `bytes` would take it past the conversation limits (domain/limits.ts).
   */
  append(userId: string, id: string, message: NewMessage, bytes: number): Promise<Appended | ConversationFull | undefined>;
  /**
   * One atomic step: check the conversation is the user's and has room,
   * count `n` queries, append the message — or nothing at all. Undefined (and
   * nothing counted) when the conversation is not the user's; ConversationFull
   * (nothing counted) when it has no room for `bytes` more.
   */
  appendCounted(
    userId: string,
    id: string,
    message: NewMessage,
    n: number,
    bytes: number,
  ): Promise<CountedAppend | ConversationFull | undefined>;
  setTitle(userId: string, id: string, title: string): Promise<ConversationSummary | undefined>;
  /** False when not the user's conversation. */
  remove(userId: string, id: string): Promise<boolean>;
  /** Case-insensitive literal substring of the title or a user message; keyset order; at most `limit`. */
  search(userId: string, text: string, limit: number): Promise<ConversationSummary[]>;
}

export interface UsageBackend {
  /** Fresh free-tier counters for a user with nothing stored (nothing is written). */
  read(userId: string): Promise<UsageState>;
  /** Check and count `n` atomically (domain/usage.ts consumeCounters); a refusal writes nothing. */
  consume(userId: string, n: number): Promise<ConsumeState>;
  setTier(userId: string, tier: Tier): Promise<UsageState>;
}
