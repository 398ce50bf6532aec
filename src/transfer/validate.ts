import { type ConversationRow, readConversation } from '../formats/chat-conversation.ts';
import { readUsage, type UsageRow } from '../formats/chat-usage.ts';
import { textDepthExceeds } from '../formats/json-depth.ts';
import { jsonParseReason } from '../formats/json-error.ts';
import { parseJsonText } from '../formats/json-text.ts';
import type { Validated } from '../formats/validated.ts';
import { DEFAULT_MAX_DEPTH, tooDeepReason } from './limits.ts';
import { fileStem, fileUser, type SourceFile } from './sources/chat.ts';

/**
 * Source file → typed row, or a rejection naming the reason. The reading
 * itself is the file format's (src/formats/), shared with the JSON backend;
 * this adds what the transfer needs: the file's place in the tree, and the
 * values PostgreSQL cannot store.
 */

export type { ConversationRow, MessageRow } from '../formats/chat-conversation.ts';
export type { UsageRow } from '../formats/chat-usage.ts';
export { parseTimestampUs } from '../formats/timestamps.ts';
export type { Validated } from '../formats/validated.ts';

export interface ValidateOptions {
  /** Owner of conversations in the single-user layout (conversations/<id>.json) that name none. */
  defaultUser?: string;
}

/** Epoch microseconds → `YYYY-MM-DD HH:MM:SS.ffffff+00`, a timestamptz literal without loss. */
export function formatTimestampUs(us: number): string {
  const ms = Math.floor(us / 1000);
  const micro = us - ms * 1000;
  const iso = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}${String(micro).padStart(3, '0')}+00`;
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

/**
 * Parse a document as the Python apps write it (BOM, bare NaN/Infinity,
 * numbers kept exactly: formats/json-text.ts); a syntax error is a rejection
 * naming the position. Text nested deeper than `maxDepth` is rejected before
 * the parser sees it (formats/json-depth.ts): the parser, the canonical hash
 * and PostgreSQL's jsonb input all recurse per level. A RangeError from the
 * parser (a stack or string limit) is the record's rejection too, never the run's.
 */
export function parseDocument(text: string, maxDepth = DEFAULT_MAX_DEPTH): { ok: true; value: unknown } | { ok: false; reason: string } {
  // The apps' writers truncate before writing (open(path, 'w')): a crash between the two leaves an empty file.
  if (text.trim() === '')
    return { ok: false, reason: `empty file (${text.length === 0 ? 'zero bytes' : 'only whitespace'}): a write that never finished` };
  if (textDepthExceeds(text, maxDepth)) return { ok: false, reason: tooDeepReason({ maxDepth, maxFileSize: 0 }) };
  try {
    return { ok: true, value: parseJsonText(text) };
  } catch (error) {
    if (error instanceof RangeError) return { ok: false, reason: `cannot be parsed: ${error.message}` };
    return { ok: false, reason: jsonParseReason(error, text) };
  }
}

export const UNSTORABLE = 'contains a NUL character or an unpaired UTF-16 surrogate, which PostgreSQL cannot store';

export function validateConversation(
  file: SourceFile,
  value: unknown,
  options: ValidateOptions = {},
  mtimeMs = 0,
): Validated<ConversationRow> {
  const result = readConversation(value, { stem: fileStem(file), folderUser: fileUser(file), defaultUser: options.defaultUser, mtimeMs });
  if (!result.ok) return result;
  const { row } = result;
  const reject = (reason: string): Validated<ConversationRow> => ({ ok: false, key: row.id, reason, warnings: result.warnings });
  if (!isStorableText(row.title)) return reject(`title: ${UNSTORABLE}`);
  for (let i = 0; i < row.messages.length; i++) {
    const content = row.messages[i]!.content;
    if (content !== null && !isStorableText(content)) return reject(`message ${i}: content: ${UNSTORABLE}`);
  }
  return result;
}

/** Usage file → counters (both spellings the seeds use; see formats/chat-usage.ts). */
export function validateUsage(file: SourceFile, value: unknown): Validated<UsageRow> {
  return readUsage(value, fileStem(file));
}
