import { createHash } from 'node:crypto';
import { ESCAPE_TAG, FLOAT_TAG, isTagKey } from '../domain/json-values.ts';
import { isRawNumber, numericText } from '../formats/json-text.ts';
import { type ConversationRow, isStorableJson, UNSTORABLE, type UsageRow } from './validate.ts';

/**
 * The one canonical form of a record, and its content hash, shared by import
 * (to skip unchanged records) and verify (to compare the files with the
 * database). It is built identically from a validated source document and
 * from the database rows, so equal content gives equal hashes whichever side
 * it came from.
 *
 * conversation = {created_at (epoch µs), id, messages: [message…], title, user_id}
 * message      = {content?, metadata?, role, stage1?, stage2?, stage3?}
 * usage        = {user_id, tier, daily_used, monthly_used, total_queries, last_reset_daily, last_reset_monthly}
 *
 * Conversation and message keys appear in that order; usage is one jsonbText. A message carries `content` when it is a
 * user message or has one, the stage fields when it is an assistant message or
 * they are set, and `metadata` when set: a value stored where the source had
 * none still shows up as a difference.
 *
 * Left out on purpose: values the database invents or derives (row ids,
 * message_count, usage created_at/updated_at, limits, which follow the tier),
 * and timestamps that only order things (updated_at, per-message created_at).
 *
 * JSON values are written in PostgreSQL's own jsonb text form (`jsonbText`:
 * keys by length then bytes, ", " and ": " separators, numbers without
 * exponent, as numeric_out prints them). So the database side hashes
 * `stage1::text` as the server prints it, without parsing a byte of JSON, and
 * the text import sends is already in that form. NaN/±Infinity are the tagged
 * object {"$pgferry:float": "NaN"} of src/domain/json-values.ts, as stored. A
 * property test checks jsonbText against the server for random values.
 */

/** First line of every hashed text (a database-side hash starts with it too: kinds/conversations/verify.ts). */
export const CANONICAL_VERSION = 'pgferry-canonical-1';

/** jsonb's key order: shorter (in UTF-8 bytes) first, then bytewise. Most objects arrive already in order. */
function sortKeys(keys: string[]): string[] {
  const n = keys.length;
  if (n < 2) return keys;
  let sorted = true;
  for (let i = 0; i < n; i++) {
    const key = keys[i]!;
    for (let j = 0; j < key.length; j++) if (key.charCodeAt(j) > 0x7f) return sortKeysByBytes(keys);
    if (i > 0 && sorted) {
      const previous = keys[i - 1]!;
      sorted = previous.length < key.length || (previous.length === key.length && previous < key);
    }
  }
  return sorted ? keys : keys.sort((a, b) => (a.length !== b.length ? a.length - b.length : a < b ? -1 : a > b ? 1 : 0));
}

function sortKeysByBytes(keys: string[]): string[] {
  const bytes = new Map(keys.map((k) => [k, Buffer.from(k, 'utf8')]));
  return keys.sort((a, b) => {
    const x = bytes.get(a)!;
    const y = bytes.get(b)!;
    return x.length !== y.length ? x.length - y.length : Buffer.compare(x, y);
  });
}

/** `"key": ` for the keys seen so far (stage data repeats a handful of keys millions of times). */
const keyPrefixes = new Map<string, string>();
function keyPrefix(key: string): string {
  let prefix = keyPrefixes.get(key);
  if (prefix === undefined) {
    prefix = `${JSON.stringify(key)}: `;
    if (keyPrefixes.size < 10_000) keyPrefixes.set(key, prefix);
  }
  return prefix;
}

/** A finite number as numeric_out prints it: JavaScript's shortest digits, never an exponent. */
export function numberText(n: number): string {
  const s = String(n);
  const e = s.indexOf('e');
  if (e < 0) return s;
  const negative = s.charCodeAt(0) === 0x2d;
  const mantissa = s.slice(negative ? 1 : 0, e);
  const exponent = Number(s.slice(e + 1));
  const point = mantissa.indexOf('.');
  const digits = point < 0 ? mantissa : mantissa.slice(0, point) + mantissa.slice(point + 1);
  const integerDigits = (point < 0 ? mantissa.length : point) + exponent;
  const plain =
    integerDigits <= 0
      ? `0.${'0'.repeat(-integerDigits)}${digits}`
      : integerDigits >= digits.length
        ? digits + '0'.repeat(integerDigits - digits.length)
        : `${digits.slice(0, integerDigits)}.${digits.slice(integerDigits)}`;
  return negative ? `-${plain}` : plain;
}

/**
 * A JSON value as PostgreSQL prints it after a round trip through jsonb.
 * `undefined` properties are dropped (as JSON.stringify does); non-finite
 * numbers become the tagged object.
 */
export function jsonbText(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'object') {
    if (value === null) return 'null';
    // A number kept as its lexeme (formats/json-text.ts): as numeric prints it, scale and digits intact.
    if (isRawNumber(value)) return numericText(value.rawJSON);
    if (Array.isArray(value)) {
      const n = value.length;
      if (n === 0) return '[]';
      let out = `[${jsonbText(value[0] ?? null)}`;
      for (let i = 1; i < n; i++) out += `, ${jsonbText(value[i] ?? null)}`;
      return `${out}]`;
    }
    const record = value as Record<string, unknown>;
    const keys = sortKeys(Object.keys(record));
    let out = '';
    let defined = 0;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const item = record[key];
      if (item === undefined) continue;
      defined++;
      out += (out === '' ? '{' : ', ') + keyPrefix(key) + jsonbText(item);
    }
    if (out === '') return '{}';
    // A caller's own one-key object named like our tags is wrapped, as toJsonb does.
    if (defined === 1 && isTagKey(keys.find((k) => record[k] !== undefined)!)) return `{${keyPrefix(ESCAPE_TAG)}${out}}}`;
    return `${out}}`;
  }
  if (typeof value === 'number') return Number.isFinite(value) ? numberText(value) : `{"${FLOAT_TAG}": "${value}"}`;
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  return 'null'; // undefined, functions, symbols: not JSON
}

/** A message from the file (JS values), to be turned into its JSON texts. */
export interface MessageContent {
  role: string;
  content: string | null;
  stage1: unknown;
  stage2: unknown;
  stage3: unknown;
  /** null or undefined: none. */
  metadata: unknown;
}

/** A message's JSONB column values as JSON text (null = SQL NULL): what loading sends and hashing reads. */
export interface MessageJson {
  stage1: string | null;
  stage2: string | null;
  stage3: string | null;
  metadata: string | null;
}

const jsonOrNull = (value: unknown): string | null => (value === null || value === undefined ? null : jsonbText(value));

export function messageJson(message: MessageContent): MessageJson {
  return {
    stage1: jsonOrNull(message.stage1),
    stage2: jsonOrNull(message.stage2),
    stage3: jsonOrNull(message.stage3),
    metadata: jsonOrNull(message.metadata),
  };
}

/** Canonical text of one message. */
export function canonicalMessage(role: string, content: string | null, json: MessageJson): string {
  const assistant = role === 'assistant';
  // Keys in sorted order: content, metadata, role, stage1, stage2, stage3.
  let text = '{';
  if (role === 'user' || content !== null) text += `"content":${JSON.stringify(content)},`;
  if (json.metadata !== null) text += `"metadata":${json.metadata},`;
  text += `"role":${JSON.stringify(role)}`;
  if (assistant || json.stage1 !== null) text += `,"stage1":${json.stage1 ?? 'null'}`;
  if (assistant || json.stage2 !== null) text += `,"stage2":${json.stage2 ?? 'null'}`;
  if (assistant || json.stage3 !== null) text += `,"stage3":${json.stage3 ?? 'null'}`;
  return `${text}}`;
}

export interface ConversationHead {
  id: string;
  userId: string;
  title: string;
  createdUs: number;
}

/** Canonical text of a conversation from its head and its messages' canonical texts, in position order. */
export function canonicalConversation(head: ConversationHead, messages: readonly string[]): string {
  return (
    `{"created_at":${head.createdUs},"id":${JSON.stringify(head.id)},"messages":[${messages.join(',')}],` +
    `"title":${JSON.stringify(head.title)},"user_id":${JSON.stringify(head.userId)}}`
  );
}

export function hashCanonical(text: string): string {
  return createHash('sha256').update(CANONICAL_VERSION).update('\n').update(text).digest('hex');
}

/**
 * hashCanonical(canonicalConversation(head, messages)), fed piece by piece as
 * messages arrive: the same digest without building (and flattening) one
 * large string, and without holding the messages.
 */
export class ConversationHasher {
  private readonly hash = createHash('sha256').update(CANONICAL_VERSION).update('\n');
  private readonly head: ConversationHead;
  private count = 0;

  constructor(head: ConversationHead) {
    this.head = head;
    this.hash.update(`{"created_at":${head.createdUs},"id":${JSON.stringify(head.id)},"messages":[`);
  }

  add(message: string): void {
    if (this.count++ > 0) this.hash.update(',');
    this.hash.update(message);
  }

  digest(): string {
    this.hash.update(`],"title":${JSON.stringify(this.head.title)},"user_id":${JSON.stringify(this.head.userId)}}`);
    return this.hash.digest('hex');
  }
}

export function hashConversation(head: ConversationHead, messages: readonly string[]): string {
  const hasher = new ConversationHasher(head);
  for (const message of messages) hasher.add(message);
  return hasher.digest();
}

/** A conversation ready to load: its hash, and each message's JSON texts for the JSONB columns. */
export interface PreparedConversation {
  key: string;
  file: string;
  hash: string;
  row: Omit<ConversationRow, 'messages'>;
  messages: Array<{ role: 'user' | 'assistant'; content: string | null; createdUs: number; json: MessageJson }>;
  /** Source bytes, for progress. */
  bytes: number;
}

/** Prepare a validated conversation; a reason string when a JSON value holds what PostgreSQL cannot store. */
export function prepareConversation(row: ConversationRow, file: string, bytes: number): PreparedConversation | string {
  // Hashed message by message: the canonical texts are not held (for a large file they weigh as much as the file).
  const hasher = new ConversationHasher(row);
  const messages: PreparedConversation['messages'] = [];
  for (let i = 0; i < row.messages.length; i++) {
    const m = row.messages[i]!;
    let json: MessageJson;
    try {
      json = messageJson(m);
    } catch (error) {
      if (error instanceof RangeError) return `message ${i}: ${error.message}`;
      throw error;
    }
    for (const field of ['stage1', 'stage2', 'stage3', 'metadata'] as const) {
      const text = json[field];
      if (text !== null && !isStorableJson(text)) return `message ${i}: ${field}: ${UNSTORABLE}`;
    }
    hasher.add(canonicalMessage(m.role, m.content, json));
    messages.push({ role: m.role, content: m.content, createdUs: m.createdUs, json });
  }
  const { messages: _parsed, ...head } = row;
  return { key: row.id, file, hash: hasher.digest(), row: head, messages, bytes };
}

export function canonicalUsage(row: UsageRow): string {
  return jsonbText({
    user_id: row.userId,
    tier: row.tier,
    daily_used: row.dailyUsed,
    monthly_used: row.monthlyUsed,
    total_queries: row.totalQueries,
    last_reset_daily: row.lastResetDaily,
    last_reset_monthly: row.lastResetMonthly,
  });
}

export interface PreparedUsage {
  key: string;
  file: string;
  hash: string;
  row: UsageRow;
  bytes: number;
}

export function prepareUsage(row: UsageRow, file: string, bytes: number): PreparedUsage {
  return { key: row.userId, file, hash: hashCanonical(canonicalUsage(row)), row, bytes };
}
