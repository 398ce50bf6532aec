import { z } from 'zod';
import { invalidInput } from '../errors.ts';
import { assertCleanInput } from './clean-input.ts';

/**
 * Chat conversations (seeds 001, 003). Terminology:
 * - conversation: a titled, ordered list of messages owned by one user;
 * - user message: `{role: "user", content}`;
 * - assistant message: the three-stage answer of the multi-model chat app:
 *   stage1 = each model's response, stage2 = each model's ranking of the
 *   others, stage3 = the chairman's final answer; `metadata` holds the
 *   label→model map and aggregate rankings (omitted when empty).
 */

export const DEFAULT_TITLE = 'New Conversation';
export const MAX_TITLE_LENGTH = 500;
/** Generous: a 1 MB message must round-trip (issue 3); the HTTP body limit is the real guard. */
export const MAX_CONTENT_LENGTH = 16 * 1024 * 1024;
export const MAX_LIST_LIMIT = 100;
export const DEFAULT_LIST_LIMIT = 50;
export const MAX_MESSAGES_LIMIT = 1000;
export const MAX_SEARCH_LIMIT = 100;
export const DEFAULT_SEARCH_LIMIT = 20;
export const MAX_SEARCH_TEXT = 1000;

export interface ConversationSummary {
  id: string;
  title: string;
  /** ISO 8601, UTC. */
  createdAt: string;
  updatedAt: string;
  messageCount: number;
}

export interface UserMessage {
  role: 'user';
  position: number;
  content: string;
  createdAt: string | null;
}

export interface AssistantMessage {
  role: 'assistant';
  position: number;
  stage1: unknown;
  stage2: unknown;
  stage3: unknown;
  /** Absent when the source had none. */
  metadata?: unknown;
  createdAt: string | null;
}

export type Message = UserMessage | AssistantMessage;

export interface Conversation extends ConversationSummary {
  userId: string;
  messages: Message[];
  /** Pass as `messagesCursor` to fetch the next messages; null when there are no more. */
  nextMessagesCursor: string | null;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface AssistantMessageInput {
  stage1: unknown;
  stage2: unknown;
  stage3: unknown;
  metadata?: unknown;
}

const titleSchema = z.string().max(MAX_TITLE_LENGTH);
const contentSchema = z.string().min(1).max(MAX_CONTENT_LENGTH);
const assistantSchema = z.object({
  stage1: z.array(z.unknown()),
  stage2: z.array(z.unknown()),
  stage3: z.union([z.record(z.string(), z.unknown()), z.null()]),
  metadata: z.union([z.record(z.string(), z.unknown()), z.null()]).optional(),
});

function parse<T>(schema: z.ZodType<T>, value: unknown, field: string): T {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue && issue.path.length > 0 ? `${field}.${issue.path.join('.')}` : field;
    throw invalidInput(`invalid ${where}: ${issue?.message ?? 'bad value'}`, { field: where });
  }
  return result.data;
}

function clean<T>(value: T, field: string): T {
  assertCleanInput(value, field);
  return value;
}

export const validateTitle = (value: unknown): string => clean(parse(titleSchema, value, 'title'), 'title');
export const validateContent = (value: unknown): string => clean(parse(contentSchema, value, 'content'), 'content');
export function validateAssistantInput(value: unknown): AssistantMessageInput {
  const checked = parse(assistantSchema, value, 'message');
  // z.record rebuilds an object by assignment, which turns a `__proto__` key into the prototype (the key is lost):
  // the schema only checks the shape, the caller's own objects are kept.
  const given = value as { stage3: Record<string, unknown> | null; metadata?: Record<string, unknown> | null };
  const parsed = clean({ ...checked, stage3: given.stage3, metadata: given.metadata }, 'message');
  const out: AssistantMessageInput = { stage1: parsed.stage1, stage2: parsed.stage2, stage3: parsed.stage3 };
  if (parsed.metadata !== undefined && parsed.metadata !== null) out.metadata = parsed.metadata;
  return out;
}

export function clampLimit(value: number | undefined, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw invalidInput(`limit must be an integer >= 1, got ${value}`, { field: 'limit' });
  return Math.min(value, max);
}

export function validateSearchText(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_SEARCH_TEXT) {
    throw invalidInput(`search text must be a string of 1-${MAX_SEARCH_TEXT} characters`, { field: 'text' });
  }
  return value;
}
