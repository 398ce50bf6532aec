import { DEFAULT_TITLE } from '../domain/conversations.ts';
import { isValidRecordId, isValidUserId } from '../domain/ids.ts';
import {
  checkMessage,
  formatBytes,
  MAX_CONVERSATION_BYTES,
  MAX_CONVERSATION_MESSAGES,
  MAX_JSON_DEPTH,
  nestsDeeperThan,
} from '../domain/limits.ts';
import { formatTimestamp, parseTimestampUs, styleAmong, type TimestampStyle } from './timestamps.ts';
import { describe, isObject, type Validated } from './validated.ts';

/**
 * The chat app's conversation file (seeds 001 and 003, DESIGN 8.1): read
 * once, here, for both the JSON backend and the importer — whatever one
 * accepts the other accepts and reads identically.
 *
 *   conversations/<userId>/<id>.json   per-user layout (the folder names the owner)
 *   conversations/<id>.json            original single-user layout (owner from the document or --default-user)
 *
 *   {id, user_id, created_at, title,
 *    messages: [{role:"user", content} | {role:"assistant", stage1, stage2, stage3, metadata?}]}
 *
 * Real files: naive UTC timestamps with microseconds, no `updated_at`,
 * `metadata` omitted when empty, numbers as Python writes them (kept exact by
 * formats/json-text.ts). Some writers add `updated_at`, per-message
 * `created_at` or `timestamp`, offsets or epoch floats: all read.
 *
 * Writing (the JSON backend): a document is changed in place, so fields
 * pgferry does not know survive; timestamps are written in the style the file
 * already uses; no field the app does not write is added (`updated_at` is
 * kept true only where the file has one; the file's modification time says
 * when it last changed).
 *
 * Limits (domain/limits.ts, the store's own): a file with a message nested
 * deeper than MAX_JSON_DEPTH or larger than MAX_MESSAGE_BYTES, or with more
 * messages or bytes than a conversation may hold, is rejected with the limit
 * as the reason — the importer skips it, the JSON backend reports it as
 * CORRUPT_DATA — so both refuse what the store would never have accepted.
 */

export interface MessageRow {
  role: 'user' | 'assistant';
  /** The user's text; for an assistant message only when the source had one. */
  content: string | null;
  /** JSON values as parsed (exact numbers kept); null when absent. */
  stage1: unknown;
  stage2: unknown;
  stage3: unknown;
  /** undefined when the source had none. */
  metadata: unknown;
  /** Epoch microseconds: the message's own timestamp, else the conversation's created_at. */
  createdUs: number;
  /** Its size as the limits measure it (domain/limits.ts messageBytes). */
  bytes: number;
}

export interface ConversationRow {
  id: string;
  userId: string;
  title: string;
  createdUs: number;
  /** The latest of created_at, updated_at, the messages' timestamps (and the file's modification time, see mtimeIsUpdate). */
  updatedUs: number;
  messages: MessageRow[];
  /** The sum of the messages' sizes (domain/limits.ts). */
  bytes: number;
}

/** Where a conversation file sits: what its path says about it. */
export interface ConversationPlace {
  /** The file name without `.json`. */
  stem: string;
  /** The user folder in the per-user layout; null in the single-user layout. */
  folderUser: string | null;
  /** Owner of a single-user-layout conversation that names none. */
  defaultUser?: string;
  /** The file's modification time (ms since the epoch): a conversation without created_at takes it. */
  mtimeMs: number;
  /**
   * Count the modification time as a change (the JSON backend: the chat app
   * changes files without touching a timestamp). The importer does not: a
   * copied or restored tree would reorder every conversation.
   */
  mtimeIsUpdate?: boolean;
}

const CONVERSATION_KEYS = new Set(['id', 'user_id', 'title', 'created_at', 'updated_at', 'messages']);
const MESSAGE_KEYS = new Set(['role', 'content', 'stage1', 'stage2', 'stage3', 'metadata', 'timestamp', 'created_at']);

/** A parsed conversation file → its row, or the reason it cannot be read. */
export function readConversation(value: unknown, place: ConversationPlace): Validated<ConversationRow> {
  const warnings: string[] = [];
  const { stem } = place;
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

  const owner = ownerOf(value.user_id, place, warnings);
  if (!owner.ok) return reject(owner.reason, id);
  const userId = owner.userId;

  let title = DEFAULT_TITLE;
  if (value.title !== undefined && value.title !== null) {
    if (typeof value.title !== 'string') return reject(`title must be a string, found ${describe(value.title)}`, id);
    title = value.title;
  }

  let createdUs: number;
  if (value.created_at === undefined || value.created_at === null) {
    createdUs = Math.round(place.mtimeMs * 1000);
    warnings.push("no created_at: took the file's modification time");
  } else {
    const parsed = parseTimestampUs(value.created_at);
    if (parsed === null) return reject(`created_at is not a timestamp: ${describe(value.created_at)}`, id);
    createdUs = parsed;
  }
  let updatedUs = place.mtimeIsUpdate ? Math.max(createdUs, Math.round(place.mtimeMs * 1000)) : createdUs;
  if (value.updated_at !== undefined && value.updated_at !== null) {
    const parsed = parseTimestampUs(value.updated_at);
    if (parsed === null) return reject(`updated_at is not a timestamp: ${describe(value.updated_at)}`, id);
    updatedUs = Math.max(updatedUs, parsed);
  }

  if (!Array.isArray(value.messages)) {
    return reject(value.messages === undefined ? 'no messages list' : `messages must be a list, found ${describe(value.messages)}`, id);
  }
  if (value.messages.length > MAX_CONVERSATION_MESSAGES) {
    return reject(`${value.messages.length} messages, over the limit of ${MAX_CONVERSATION_MESSAGES} per conversation`, id);
  }
  const messages: MessageRow[] = [];
  const unknownMessageKeys = new Set<string>();
  let bytes = 0;
  for (let i = 0; i < value.messages.length; i++) {
    const message = readMessage(value.messages[i], createdUs, unknownMessageKeys);
    if (typeof message === 'string') return reject(`message ${i}: ${message}`, id);
    messages.push(message);
    bytes += message.bytes;
    if (message.createdUs > updatedUs) updatedUs = message.createdUs;
  }
  if (bytes > MAX_CONVERSATION_BYTES) {
    return reject(`its messages hold ${bytes} bytes, over the limit of ${formatBytes(MAX_CONVERSATION_BYTES)} per conversation`, id);
  }
  const unknownKeys = Object.keys(value).filter((key) => !CONVERSATION_KEYS.has(key));
  if (unknownKeys.length > 0) warnings.push(`fields not imported (no column for them): ${unknownKeys.join(', ')}`);
  if (unknownMessageKeys.size > 0) warnings.push(`message fields not imported (no column for them): ${[...unknownMessageKeys].join(', ')}`);

  return { ok: true, key: id, row: { id, userId, title, createdUs, updatedUs, messages, bytes }, warnings };
}

/** The owner: the folder's in the per-user layout; the document's or the default user in the single-user layout. */
function ownerOf(
  docUser: unknown,
  place: ConversationPlace,
  warnings: string[],
): { ok: true; userId: string } | { ok: false; reason: string } {
  const { folderUser } = place;
  if (folderUser !== null) {
    if (!isValidUserId(folderUser)) return { ok: false, reason: `user folder ${JSON.stringify(folderUser)} is not a valid user id` };
    if (docUser !== undefined && docUser !== null && docUser !== folderUser) {
      warnings.push(
        `user_id ${describe(docUser)} in the document differs from its folder: the folder's user ${JSON.stringify(folderUser)} owns it`,
      );
    }
    return { ok: true, userId: folderUser };
  }
  if (docUser !== undefined && docUser !== null) {
    return isValidUserId(docUser) ? { ok: true, userId: docUser } : { ok: false, reason: `invalid user_id ${describe(docUser)}` };
  }
  if (place.defaultUser !== undefined) return { ok: true, userId: place.defaultUser };
  return { ok: false, reason: 'no user_id (single-user layout): pass --default-user ID to name the owner' };
}

/** One message → its row, or the reason (without the "message N:" prefix). */
function readMessage(raw: unknown, conversationUs: number, unknownKeys: Set<string>): MessageRow | string {
  if (!isObject(raw)) return `expected an object, found ${describe(raw)}`;
  // First, before anything that recurses into the value.
  if (nestsDeeperThan(raw)) return `nests deeper than ${MAX_JSON_DEPTH} levels`;
  const row = readMessageFields(raw, conversationUs, unknownKeys);
  if (typeof row === 'string') return row;
  const { stage1, stage2, stage3, metadata } = row;
  const size = checkMessage(
    row.role === 'user' ? { role: 'user', content: row.content as string } : { role: 'assistant', stage1, stage2, stage3, metadata },
    { depthChecked: true },
  );
  if (size.problem !== undefined) return size.problem;
  row.bytes = size.bytes;
  return row;
}

function readMessageFields(raw: Record<string, unknown>, conversationUs: number, unknownKeys: Set<string>): MessageRow | string {
  let createdUs = conversationUs;
  const stamp = raw.timestamp ?? raw.created_at;
  if (stamp !== undefined && stamp !== null) {
    const parsed = parseTimestampUs(stamp);
    if (parsed === null) return `timestamp is not a timestamp: ${describe(stamp)}`;
    createdUs = parsed;
  }
  for (const key in raw) if (!MESSAGE_KEYS.has(key)) unknownKeys.add(key);
  if (raw.role === 'user') {
    if (typeof raw.content !== 'string') return `user content must be a string, found ${describe(raw.content)}`;
    return { role: 'user', content: raw.content, stage1: null, stage2: null, stage3: null, metadata: undefined, createdUs, bytes: 0 };
  }
  if (raw.role === 'assistant') {
    if (raw.content !== undefined && raw.content !== null && typeof raw.content !== 'string') {
      return `assistant content must be a string when present, found ${describe(raw.content)}`;
    }
    return {
      role: 'assistant',
      content: typeof raw.content === 'string' ? raw.content : null,
      stage1: raw.stage1 ?? null,
      stage2: raw.stage2 ?? null,
      stage3: raw.stage3 ?? null,
      metadata: raw.metadata === null ? undefined : raw.metadata,
      createdUs,
      bytes: 0,
    };
  }
  return `unknown role ${describe(raw.role)} (expected "user" or "assistant")`;
}

// ---------------------------------------------------------------------------
// Writing, in the app's own format

/** A conversation document as it sits in the file: the known fields, and whatever else the app wrote. */
export interface ConversationDoc {
  messages: Array<Record<string, unknown>>;
  [field: string]: unknown;
}

/** The style this document writes timestamps in (the chat app's when it has none yet). */
const styleOfDoc = (doc: ConversationDoc): TimestampStyle =>
  styleAmong(doc.created_at, doc.updated_at, ...doc.messages.map((m) => m.created_at ?? m.timestamp));

/** A new conversation file, exactly as the chat app writes one. */
export function newConversationDoc(id: string, userId: string, title: string, atUs: number): ConversationDoc {
  return { id, user_id: userId, created_at: formatTimestamp(atUs), title, messages: [] };
}

/**
 * Append a message in the file's own style. A message gets `created_at` only
 * when the file's messages carry timestamps (or it has none yet): the chat
 * app's files have none, and nothing the app does not write is added.
 */
export function appendMessage(doc: ConversationDoc, message: Record<string, unknown>, atUs: number): void {
  const style = styleOfDoc(doc);
  const stamped = doc.messages.length === 0 || doc.messages.some((m) => m.created_at !== undefined || m.timestamp !== undefined);
  doc.messages.push(stamped ? { ...message, created_at: formatTimestamp(atUs, style) } : message);
  touch(doc, atUs, style);
}

export function retitle(doc: ConversationDoc, title: string, atUs: number): void {
  doc.title = title;
  touch(doc, atUs, styleOfDoc(doc));
}

/** Keep `updated_at` true where the file has one; never add it (the file's modification time records the change). */
function touch(doc: ConversationDoc, atUs: number, style: TimestampStyle): void {
  if (doc.updated_at !== undefined) doc.updated_at = formatTimestamp(atUs, style);
}
