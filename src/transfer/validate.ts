import { TIERS, type Tier } from '../config.ts';
import { DEFAULT_TITLE } from '../domain/conversations.ts';
import { isValidRecordId, isValidUserId } from '../domain/ids.ts';
import { parseJsonText } from '../formats/json-text.ts';
import { fileStem, fileUser, type SourceFile } from './sources/chat.ts';

/**
 * Source document → typed row, or a rejection naming the reason. Nothing is
 * guessed silently: every repair (an id taken from the file name, a missing
 * counter taken as 0) is a warning in the report.
 *
 * Terminology: a *record* is one source document (one conversation file, one
 * usage file); its *key* is the id it has in its kind (conversation id, user
 * id) and the primary key of import_log together with the kind.
 */

export interface MessageRow {
  role: 'user' | 'assistant';
  /** The user's text; for an assistant message only when the source had one. */
  content: string | null;
  /** JSON values as parsed (NaN/±Infinity are numbers); null when absent. */
  stage1: unknown;
  stage2: unknown;
  stage3: unknown;
  /** undefined when the source had none (stored as SQL NULL). */
  metadata: unknown;
  /** Epoch microseconds: the message's own timestamp, else the conversation's created_at. */
  createdUs: number;
}

export interface ConversationRow {
  id: string;
  userId: string;
  title: string;
  createdUs: number;
  updatedUs: number;
  messages: MessageRow[];
}

export interface UsageRow {
  userId: string;
  tier: Tier;
  dailyUsed: number;
  monthlyUsed: number;
  totalQueries: number;
  /** YYYY-MM-DD: the UTC day the daily count belongs to. */
  lastResetDaily: string;
  /** YYYY-MM-01: the UTC month the monthly count belongs to. */
  lastResetMonthly: string;
}

export type Validated<T> =
  | { ok: true; key: string; row: T; warnings: string[] }
  | { ok: false; key: string | null; reason: string; warnings: string[] };

export interface ValidateOptions {
  /** Owner of conversations in the single-user layout (conversations/<id>.json) that name none. */
  defaultUser?: string;
}

const INT4_MAX = 2_147_483_647;
const MIN_US = Date.UTC(1, 0, 1) * 1000;
const MAX_US = Date.UTC(9999, 11, 31, 23, 59, 59, 999) * 1000 + 999;

// ---------------------------------------------------------------------------
// Timestamps

const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/**
 * ISO 8601 timestamp → epoch microseconds. A timestamp without a zone is UTC
 * (Python's `datetime.utcnow().isoformat()`); fractions keep microseconds
 * (digits past the sixth are dropped). Numbers are epoch seconds. Null when invalid.
 */
export function parseTimestampUs(value: unknown): number | null {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return null;
    const us = Math.round(value * 1e6);
    return us >= MIN_US && us <= MAX_US ? us : null;
  }
  if (typeof value !== 'string') return null;
  const m = TIMESTAMP.exec(value.trim());
  if (!m) return null;
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', zone] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return null;
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  if (date.getUTCMonth() !== month - 1) return null; // 31 April and the like
  date.setUTCHours(hour, minute, second, 0);
  let us = date.getTime() * 1000 + Number((frac + '000000').slice(0, 6));
  if (zone && zone.toUpperCase() !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const offsetMin = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4) || '0');
    us -= sign * offsetMin * 60_000_000;
  }
  return us >= MIN_US && us <= MAX_US ? us : null;
}

/** Epoch microseconds → `YYYY-MM-DD HH:MM:SS.ffffff+00`, a timestamptz literal without loss. */
export function formatTimestampUs(us: number): string {
  const ms = Math.floor(us / 1000);
  const micro = us - ms * 1000;
  const iso = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}${String(micro).padStart(3, '0')}+00`;
}

/** A day (`YYYY-MM-DD`) from a date or timestamp, in UTC; null when invalid. */
export function parseDay(value: unknown): string | null {
  const us = parseTimestampUs(value);
  if (us === null) return null;
  return new Date(Math.floor(us / 1000)).toISOString().slice(0, 10);
}

// ---------------------------------------------------------------------------
// Values PostgreSQL cannot hold: a NUL character (text and jsonb refuse it) and
// a lone UTF-16 surrogate (it would turn into U+FFFD on the way, a silent change).

// String.prototype.isWellFormed is ES2024 (Node >= 20); the project's lib is ES2023.
const isWellFormed = (text: string): boolean => (text as string & { isWellFormed(): boolean }).isWellFormed();

export const isStorableText = (text: string): boolean => !text.includes('\u0000') && isWellFormed(text);

/**
 * The same check on JSON text as JSON.stringify writes it: NUL and lone
 * surrogates appear as \u0000 and \udXXX escapes (a preceding escaped
 * backslash does not count). One native regex scan instead of a walk of the value.
 */
const UNSTORABLE_ESCAPE = /(?<!\\)(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2})/i;
export const isStorableJson = (json: string): boolean => !UNSTORABLE_ESCAPE.test(json);

// ---------------------------------------------------------------------------
// Documents

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

const describe = (value: unknown): string =>
  value === null ? 'null' : Array.isArray(value) ? 'a list' : typeof value === 'string' ? `"${value.slice(0, 40)}"` : typeof value;

/**
 * Parse a document as the Python apps write it (BOM, bare NaN/Infinity,
 * numbers kept exactly: formats/json-text.ts); a syntax error is a rejection
 * naming the position.
 */
export function parseDocument(text: string): { ok: true; value: unknown } | { ok: false; reason: string } {
  try {
    return { ok: true, value: parseJsonText(text) };
  } catch (error) {
    return { ok: false, reason: `malformed JSON: ${(error as Error).message}` };
  }
}

export const UNSTORABLE = 'contains a NUL character or an unpaired UTF-16 surrogate, which PostgreSQL cannot store';

const CONVERSATION_KEYS = new Set(['id', 'user_id', 'title', 'created_at', 'updated_at', 'messages']);
const MESSAGE_KEYS = new Set(['role', 'content', 'stage1', 'stage2', 'stage3', 'metadata', 'timestamp', 'created_at']);

export function validateConversation(
  file: SourceFile,
  value: unknown,
  options: ValidateOptions = {},
  mtimeMs = 0,
): Validated<ConversationRow> {
  const warnings: string[] = [];
  const stem = fileStem(file);
  const folderUser = fileUser(file);
  const fileKey = isValidRecordId(stem) ? stem : null;
  const reject = (reason: string, key: string | null = fileKey): Validated<ConversationRow> => ({ ok: false, key, reason, warnings });
  if (!isObject(value)) return reject(`expected a JSON object, found ${describe(value)}`);

  // id: the document's, else the file name's (a warning); they must agree, as the app finds a conversation by its file name.
  let id: string;
  if (value.id === undefined || value.id === null || value.id === '') {
    if (fileKey === null) return reject(`no id, and the file name is not a valid id: ${JSON.stringify(stem)}`);
    id = fileKey;
    warnings.push('no id in the document: took the id from the file name');
  } else if (!isValidRecordId(value.id)) {
    return reject(`invalid id ${describe(value.id)}: expected 1-128 letters, digits, '-' or '_'`);
  } else if (value.id !== stem) {
    return reject(`id ${JSON.stringify(value.id)} does not match the file name ${JSON.stringify(`${stem}.json`)}`);
  } else id = value.id;

  // user: the folder's in the per-user layout; the document's or --default-user in the single-user layout.
  let userId: string;
  const docUser = value.user_id;
  if (folderUser !== null) {
    if (!isValidUserId(folderUser)) return reject(`user folder ${JSON.stringify(folderUser)} is not a valid user id`, id);
    userId = folderUser;
    if (docUser !== undefined && docUser !== null && docUser !== userId) {
      warnings.push(
        `user_id ${describe(docUser)} in the document differs from its folder: the folder's user ${JSON.stringify(userId)} owns it`,
      );
    }
  } else if (docUser !== undefined && docUser !== null) {
    if (!isValidUserId(docUser)) return reject(`invalid user_id ${describe(docUser)}`, id);
    userId = docUser;
  } else if (options.defaultUser !== undefined) {
    userId = options.defaultUser;
  } else {
    return reject('no user_id (single-user layout): pass --default-user ID to name the owner', id);
  }

  let title = DEFAULT_TITLE;
  if (value.title !== undefined && value.title !== null) {
    if (typeof value.title !== 'string') return reject(`title must be a string, found ${describe(value.title)}`, id);
    title = value.title;
  }

  let createdUs: number;
  if (value.created_at === undefined || value.created_at === null) {
    createdUs = Math.round(mtimeMs * 1000);
    warnings.push("no created_at: took the file's modification time");
  } else {
    const parsed = parseTimestampUs(value.created_at);
    if (parsed === null) return reject(`created_at is not a timestamp: ${describe(value.created_at)}`, id);
    createdUs = parsed;
  }
  let updatedUs = createdUs;
  if (value.updated_at !== undefined && value.updated_at !== null) {
    const parsed = parseTimestampUs(value.updated_at);
    if (parsed === null) return reject(`updated_at is not a timestamp: ${describe(value.updated_at)}`, id);
    updatedUs = parsed;
  }

  if (!Array.isArray(value.messages)) {
    return reject(value.messages === undefined ? 'no messages list' : `messages must be a list, found ${describe(value.messages)}`, id);
  }
  const messages: MessageRow[] = [];
  const unknownMessageKeys = new Set<string>();
  for (let i = 0; i < value.messages.length; i++) {
    const raw: unknown = value.messages[i];
    if (!isObject(raw)) return reject(`message ${i}: expected an object, found ${describe(raw)}`, id);
    let messageUs = createdUs;
    const stamp = raw.timestamp ?? raw.created_at;
    if (stamp !== undefined && stamp !== null) {
      const parsed = parseTimestampUs(stamp);
      if (parsed === null) return reject(`message ${i}: timestamp is not a timestamp: ${describe(stamp)}`, id);
      messageUs = parsed;
    }
    for (const key in raw) if (!MESSAGE_KEYS.has(key)) unknownMessageKeys.add(key);
    if (raw.role === 'user') {
      if (typeof raw.content !== 'string') return reject(`message ${i}: user content must be a string, found ${describe(raw.content)}`, id);
      messages.push({
        role: 'user',
        content: raw.content,
        stage1: null,
        stage2: null,
        stage3: null,
        metadata: undefined,
        createdUs: messageUs,
      });
    } else if (raw.role === 'assistant') {
      if (raw.content !== undefined && raw.content !== null && typeof raw.content !== 'string') {
        return reject(`message ${i}: assistant content must be a string when present, found ${describe(raw.content)}`, id);
      }
      messages.push({
        role: 'assistant',
        content: typeof raw.content === 'string' ? raw.content : null,
        stage1: raw.stage1 ?? null,
        stage2: raw.stage2 ?? null,
        stage3: raw.stage3 ?? null,
        metadata: raw.metadata === null ? undefined : raw.metadata,
        createdUs: messageUs,
      });
    } else {
      return reject(`message ${i}: unknown role ${describe(raw.role)} (expected "user" or "assistant")`, id);
    }
  }
  const unknownKeys = Object.keys(value).filter((key) => !CONVERSATION_KEYS.has(key));
  if (unknownKeys.length > 0) warnings.push(`fields not imported (no column for them): ${unknownKeys.join(', ')}`);
  if (unknownMessageKeys.size > 0) warnings.push(`message fields not imported (no column for them): ${[...unknownMessageKeys].join(', ')}`);

  if (!isStorableText(title)) return reject(`title: ${UNSTORABLE}`, id);
  for (let i = 0; i < messages.length; i++) {
    const content = messages[i]!.content;
    if (content !== null && !isStorableText(content)) return reject(`message ${i}: content: ${UNSTORABLE}`, id);
  }

  return { ok: true, key: id, row: { id, userId, title, createdUs, updatedUs, messages }, warnings };
}

function counter(
  doc: Record<string, unknown>,
  names: string[],
  max: number,
  warnings: string[],
): { ok: true; value: number } | { ok: false; reason: string } {
  const name = names.find((n) => doc[n] !== undefined && doc[n] !== null);
  if (name === undefined) {
    warnings.push(`no ${names[0]}: taken as 0`);
    return { ok: true, value: 0 };
  }
  const value = doc[name];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    return { ok: false, reason: `${name} must be an integer from 0 to ${max}, found ${describe(value)}` };
  }
  return { ok: true, value };
}

const USAGE_KEYS = new Set([
  'user_id',
  'tier',
  'daily_count',
  'daily_used',
  'monthly_count',
  'monthly_used',
  'total_queries',
  'last_daily_reset',
  'last_reset_daily',
  'last_monthly_reset',
  'last_reset_monthly',
  // Limits follow the tier (TIER_LIMITS), so the file's copies are not imported.
  'daily_limit',
  'monthly_limit',
]);

/**
 * Usage file → counters. Both spellings the seeds use are accepted
 * (`daily_count`/`last_daily_reset` of DESIGN 8.1 and `daily_used`/`last_reset_daily`
 * of seed 001). The monthly reset date is stored as the first day of its month,
 * which is how the store identifies the month the count belongs to.
 */
export function validateUsage(file: SourceFile, value: unknown): Validated<UsageRow> {
  const warnings: string[] = [];
  const userId = fileStem(file);
  const key = isValidUserId(userId) ? userId : null;
  const reject = (reason: string): Validated<UsageRow> => ({ ok: false, key, reason, warnings });
  if (key === null) return reject(`user folder ${JSON.stringify(userId)} is not a valid user id`);
  if (!isObject(value)) return reject(`expected a JSON object, found ${describe(value)}`);
  if (value.user_id !== undefined && value.user_id !== null && value.user_id !== key) {
    warnings.push(
      `user_id ${describe(value.user_id)} in the document differs from its folder: the folder's user ${JSON.stringify(key)} is used`,
    );
  }
  let tier: Tier = 'free';
  if (value.tier === undefined || value.tier === null) warnings.push('no tier: taken as "free"');
  else if (typeof value.tier === 'string' && (TIERS as readonly string[]).includes(value.tier)) tier = value.tier as Tier;
  else return reject(`unknown tier ${describe(value.tier)} (expected one of ${TIERS.join(', ')})`);

  const daily = counter(value, ['daily_count', 'daily_used'], INT4_MAX, warnings);
  if (!daily.ok) return reject(daily.reason);
  const monthly = counter(value, ['monthly_count', 'monthly_used'], INT4_MAX, warnings);
  if (!monthly.ok) return reject(monthly.reason);
  const total = counter(value, ['total_queries'], Number.MAX_SAFE_INTEGER, warnings);
  if (!total.ok) return reject(total.reason);

  const day = (names: string[]): { ok: true; value: string } | { ok: false; reason: string } => {
    const name = names.find((n) => value[n] !== undefined && value[n] !== null);
    if (name === undefined) {
      warnings.push(`no ${names[0]}: taken as 1970-01-01, so the count resets on the next query`);
      return { ok: true, value: '1970-01-01' };
    }
    const parsed = parseDay(value[name]);
    return parsed === null ? { ok: false, reason: `${name} is not a date: ${describe(value[name])}` } : { ok: true, value: parsed };
  };
  const lastDaily = day(['last_daily_reset', 'last_reset_daily']);
  if (!lastDaily.ok) return reject(lastDaily.reason);
  const lastMonthly = day(['last_monthly_reset', 'last_reset_monthly']);
  if (!lastMonthly.ok) return reject(lastMonthly.reason);

  const unknownKeys = Object.keys(value).filter((k) => !USAGE_KEYS.has(k));
  if (unknownKeys.length > 0) warnings.push(`fields not imported (no column for them): ${unknownKeys.join(', ')}`);

  return {
    ok: true,
    key,
    row: {
      userId: key,
      tier,
      dailyUsed: daily.value,
      monthlyUsed: monthly.value,
      totalQueries: total.value,
      lastResetDaily: lastDaily.value,
      lastResetMonthly: `${lastMonthly.value.slice(0, 7)}-01`,
    },
    warnings,
  };
}
