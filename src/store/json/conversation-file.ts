import { type ConversationSummary, DEFAULT_TITLE } from '../../domain/conversations.ts';
import type { NewMessage, StoredMessage } from '../core/backend.ts';
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

interface ParsedTimestamp {
  /** Milliseconds since the epoch. */
  time: number;
  /** Fraction digits 4-6 (the microseconds within the millisecond), zero-padded. */
  micros: string;
}

/** Naive values are UTC (the seed app used utcnow()); digits past the microsecond are dropped. */
function parseTimestamp(value: unknown): ParsedTimestamp | null {
  if (typeof value !== 'string') return null;
  const match = TIMESTAMP.exec(value.trim());
  if (!match) return null;
  const [, date, hm = '00:00', seconds = ':00', fraction = '', zone = 'Z'] = match;
  const millis = fraction.slice(0, 3).padEnd(3, '0');
  const offset = zone.toUpperCase() === 'Z' ? 'Z' : zone.replace(/^([+-]\d{2})(\d{2})$/, '$1:$2');
  const time = Date.parse(`${date}T${hm}${seconds}.${millis}${offset}`);
  return Number.isNaN(time) ? null : { time, micros: fraction.slice(3, 6).padEnd(3, '0') };
}

/** A stored timestamp as ISO 8601 UTC with `Z` (milliseconds, as the API shows it). Null when unreadable. */
export function toIsoUtc(value: unknown): string | null {
  const parsed = parseTimestamp(value);
  return parsed && new Date(parsed.time).toISOString();
}

/** A stored timestamp as 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (microseconds, UTC): the list keyset, as PostgreSQL keeps it. */
export function toIsoMicros(value: unknown): string | null {
  const parsed = parseTimestamp(value);
  return parsed && `${new Date(parsed.time).toISOString().slice(0, 23)}${parsed.micros}Z`;
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

/** updatedAt at microsecond precision (the list keyset); created_at when the seed file has no updated_at. */
export function updatedKeyOf(doc: ConversationDoc): string {
  return toIsoMicros(doc.updated_at) ?? (toIsoMicros(doc.created_at) as string); // created_at checked by asConversationDoc
}

/** A message of the file, decoded for the core (which builds the domain object). */
export function storedMessageOf(raw: Record<string, unknown>, position: number): StoredMessage {
  return { ...raw, role: raw.role as 'user' | 'assistant', position, createdAt: toIsoUtc(raw.created_at) };
}

/** A new message in the file's shape: `metadata` omitted when absent, as the seed app writes it. */
export function rawMessageOf(message: NewMessage, createdAt: string): Record<string, unknown> {
  if (message.role === 'user') return { role: 'user', content: message.content, created_at: createdAt };
  const raw: Record<string, unknown> = { role: 'assistant', stage1: message.stage1, stage2: message.stage2, stage3: message.stage3 };
  if (message.metadata !== undefined) raw.metadata = message.metadata;
  raw.created_at = createdAt;
  return raw;
}

/** Case-insensitive substring match on the title and user messages (assistant stages are not searched). */
export function docMatches(doc: ConversationDoc, needle: string): boolean {
  if (typeof doc.title === 'string' && doc.title.toLowerCase().includes(needle)) return true;
  return doc.messages.some((m) => m.role === 'user' && (m.content as string).toLowerCase().includes(needle));
}
