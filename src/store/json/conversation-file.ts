import {
  type AssistantMessage,
  type ConversationSummary,
  DEFAULT_TITLE,
  type Message,
  type UserMessage,
} from '../../domain/conversations.ts';
import { plainJson } from '../../formats/json-text.ts';
import { corruptFile } from './files.ts';

/**
 * The on-disk shape of one conversation, as the seed chat app writes it
 * (DESIGN 8.1), and its mapping to the domain types:
 *
 *   {id, user_id, created_at, updated_at?, title,
 *    messages: [{role:"user", content, created_at?}
 *             | {role:"assistant", stage1, stage2, stage3, metadata?, created_at?}]}
 *
 * Seed files carry naive UTC timestamps ("2024-01-01T10:00:00.123456"), no
 * `updated_at` and no `metadata` when it was empty. Documents are modified in
 * place (append, retitle) so fields pgferry does not know survive a rewrite.
 */

export interface ConversationDoc {
  id?: unknown;
  user_id?: unknown;
  created_at: string;
  updated_at?: unknown;
  title?: unknown;
  messages: Array<Record<string, unknown>>;
  [field: string]: unknown;
}

/** Python isoformat with or without offset, 'T' or space separator, any fraction digits; or a bare date. */
const TIMESTAMP = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2})(:\d{2})?(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?)?$/i;

/** A stored timestamp as ISO 8601 UTC with `Z`; naive values are UTC (the seed app used utcnow()). Null when unreadable. */
export function toIsoUtc(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const match = TIMESTAMP.exec(value.trim());
  if (!match) return null;
  const [, date, hm = '00:00', seconds = ':00', fraction = '', zone = 'Z'] = match;
  const millis = fraction.slice(0, 3).padEnd(3, '0');
  const offset = zone.toUpperCase() === 'Z' ? 'Z' : zone.replace(/^([+-]\d{2})(\d{2})$/, '$1:$2');
  const time = Date.parse(`${date}T${hm}${seconds}.${millis}${offset}`);
  return Number.isNaN(time) ? null : new Date(time).toISOString();
}

/** Check the parts every operation relies on; anything else is kept as found. */
export function asConversationDoc(value: unknown, filePath: string): ConversationDoc {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw corruptFile(filePath, 'not a JSON object');
  const doc = value as Record<string, unknown>;
  if (!Array.isArray(doc.messages)) throw corruptFile(filePath, '"messages" is not a list');
  if (toIsoUtc(doc.created_at) === null) throw corruptFile(filePath, '"created_at" is not a timestamp');
  for (const [index, message] of doc.messages.entries()) checkMessage(message, index, filePath);
  return doc as ConversationDoc;
}

function checkMessage(message: unknown, index: number, filePath: string): void {
  if (message === null || typeof message !== 'object' || Array.isArray(message)) {
    throw corruptFile(filePath, `message ${index} is not an object`);
  }
  const { role, content } = message as Record<string, unknown>;
  if (role === 'user' && typeof content !== 'string') throw corruptFile(filePath, `message ${index} has no text content`);
  if (role !== 'user' && role !== 'assistant') throw corruptFile(filePath, `message ${index} has unknown role ${JSON.stringify(role)}`);
}

export function summaryOf(id: string, doc: ConversationDoc): ConversationSummary {
  const createdAt = toIsoUtc(doc.created_at) as string; // checked by asConversationDoc
  return {
    id,
    title: typeof doc.title === 'string' ? doc.title : DEFAULT_TITLE,
    createdAt,
    updatedAt: toIsoUtc(doc.updated_at) ?? createdAt,
    messageCount: doc.messages.length,
  };
}

export function toMessage(raw: Record<string, unknown>, position: number): Message {
  const createdAt = toIsoUtc(raw.created_at);
  if (raw.role === 'user') return { role: 'user', position, content: raw.content as string, createdAt } satisfies UserMessage;
  const message: AssistantMessage = {
    role: 'assistant',
    position,
    // Exact numbers (2.0, big integers) stay exact in the file; callers get plain numbers.
    stage1: plainJson(raw.stage1 ?? null),
    stage2: plainJson(raw.stage2 ?? null),
    stage3: plainJson(raw.stage3 ?? null),
    createdAt,
  };
  if (raw.metadata !== undefined && raw.metadata !== null) message.metadata = plainJson(raw.metadata);
  return message;
}

/** Case-insensitive substring match on the title and user messages (assistant stages are not searched). */
export function docMatches(doc: ConversationDoc, needle: string): boolean {
  if (typeof doc.title === 'string' && doc.title.toLowerCase().includes(needle)) return true;
  return doc.messages.some((m) => m.role === 'user' && (m.content as string).toLowerCase().includes(needle));
}
