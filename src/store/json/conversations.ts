import { readdir } from 'node:fs/promises';
import {
  type AssistantMessage,
  type AssistantMessageInput,
  type Conversation,
  type ConversationSummary,
  clampLimit,
  DEFAULT_LIST_LIMIT,
  DEFAULT_TITLE,
  decodeCursor,
  encodeCursor,
  MAX_LIST_LIMIT,
  MAX_MESSAGES_LIMIT,
  MAX_SEARCH_LIMIT,
  type Page,
  type UserMessage,
  validateAssistantInput,
  validateContent,
  validateTitle,
} from '../../domain/conversations.ts';
import { isValidRecordId, newId, validateRecordId, validateUserId } from '../../domain/ids.ts';
import { invalidInput, isPgFerryError, notFound, PgFerryError } from '../../errors.ts';
import type { ConversationRepository, GetConversationOptions, ListOptions } from '../types.ts';
import type { JsonContext } from './context.ts';
import { asConversationDoc, type ConversationDoc, docMatches, summaryOf, toMessage } from './conversation-file.ts';
import { isDataFileName, REMOVE, readJsonFile, update } from './files.ts';
import { errorCode, ioError } from './locks.ts';

/**
 * Conversations on JSON files: `DATA_DIR/conversations/<userId>/<id>.json`.
 * Ownership is the folder, so another user's conversation is simply not
 * found. Every change touches only its own file (append cost does not grow
 * with the number of conversations); `list` and `search` scan the user's
 * folder, skipping (and logging) files that do not parse.
 */

const DEFAULT_SEARCH_LIMIT = 20;
const MAX_SEARCH_TEXT = 1000;
/** Files read at once while scanning a folder: enough to overlap I/O, bounded so a big folder cannot exhaust descriptors. */
const SCAN_CONCURRENCY = 16;

export function createJsonConversations(ctx: JsonContext): ConversationRepository {
  const userDir = (userId: string) => ctx.pathIn('conversations', userId);
  const fileOf = (userId: string, id: string) => ctx.pathIn('conversations', userId, `${id}.json`);
  const now = () => ctx.clock().toISOString();

  /** Read-modify-write an existing conversation; NOT_FOUND when it does not exist. */
  function change<R>(userId: string, id: string, fn: (doc: ConversationDoc) => R): Promise<R> {
    const file = fileOf(userId, id);
    return update(
      file,
      (current) => {
        if (current === undefined) throw notFound('conversation', id);
        const doc = asConversationDoc(current, file);
        const result = fn(doc);
        return { next: doc, result };
      },
      ctx.lock,
    );
  }

  /** Every readable conversation of a user (optionally only those `keep` accepts), as summaries. */
  async function scan(userId: string, keep?: (doc: ConversationDoc) => boolean): Promise<ConversationSummary[]> {
    const ids = await conversationIds(userDir(userId));
    const found: ConversationSummary[] = [];
    await forEachLimited(ids, SCAN_CONCURRENCY, async (id) => {
      const doc = await readForScan(fileOf(userId, id));
      if (doc && (!keep || keep(doc))) found.push(summaryOf(id, doc));
    });
    return found.sort(newestFirst);
  }

  async function readForScan(file: string): Promise<ConversationDoc | undefined> {
    try {
      const value = await readJsonFile(file);
      return value === undefined ? undefined : asConversationDoc(value, file);
    } catch (error) {
      if (!isPgFerryError(error, 'CORRUPT_DATA')) throw error;
      // One bad file must not hide a user's other conversations; the log names it for repair.
      ctx.logger.warn({ path: file, err: error }, 'skipping corrupt conversation file');
      return undefined;
    }
  }

  return {
    create: (userId, input = {}) =>
      ctx.track(async () => {
        validateUserId(userId);
        const id = input.id === undefined ? newId() : validateRecordId(input.id);
        const title = input.title === undefined ? DEFAULT_TITLE : validateTitle(input.title);
        const at = now();
        const doc: ConversationDoc = { id, user_id: userId, created_at: at, updated_at: at, title, messages: [] };
        const file = fileOf(userId, id);
        await update(
          file,
          (current) => {
            if (current !== undefined) throw new PgFerryError('CONFLICT', `conversation ${JSON.stringify(id)} already exists`);
            return { next: doc, result: undefined };
          },
          ctx.lock,
        );
        return { ...summaryOf(id, doc), userId, messages: [], nextMessagesCursor: null };
      }),

    get: (userId, id, options: GetConversationOptions = {}) =>
      ctx.track(async () => {
        validateUserId(userId);
        validateRecordId(id);
        const limit = clampLimit(options.messagesLimit, MAX_MESSAGES_LIMIT, MAX_MESSAGES_LIMIT);
        const start = options.messagesCursor === undefined ? 0 : decodeMessagesCursor(options.messagesCursor);
        const file = fileOf(userId, id);
        const value = await readJsonFile(file);
        if (value === undefined) throw notFound('conversation', id);
        const doc = asConversationDoc(value, file);
        const end = Math.min(start + limit, doc.messages.length);
        const messages = doc.messages.slice(start, end).map((raw, i) => toMessage(raw, start + i));
        const nextMessagesCursor = end < doc.messages.length ? encodeCursor([end]) : null;
        return { ...summaryOf(id, doc), userId, messages, nextMessagesCursor } satisfies Conversation;
      }),

    list: (userId, options: ListOptions = {}) =>
      ctx.track(async () => {
        validateUserId(userId);
        const limit = clampLimit(options.limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT);
        const after = options.cursor === undefined ? undefined : decodeListCursor(options.cursor);
        const all = await scan(userId);
        const rest = after ? all.filter((s) => newestFirst(s, after) > 0) : all;
        const items = rest.slice(0, limit);
        const last = items.at(-1);
        const nextCursor = rest.length > limit && last ? encodeCursor([last.updatedAt, last.id]) : null;
        return { items, nextCursor } satisfies Page<ConversationSummary>;
      }),

    addUserMessage: (userId, id, content) =>
      ctx.track(async () => {
        validateUserId(userId);
        validateRecordId(id);
        const text = validateContent(content);
        return change(userId, id, (doc): UserMessage => {
          const at = now();
          doc.messages.push({ role: 'user', content: text, created_at: at });
          doc.updated_at = at;
          return { role: 'user', position: doc.messages.length - 1, content: text, createdAt: at };
        });
      }),

    addAssistantMessage: (userId, id, input: AssistantMessageInput) =>
      ctx.track(async () => {
        validateUserId(userId);
        validateRecordId(id);
        const valid = validateAssistantInput(input);
        return change(userId, id, (doc): AssistantMessage => {
          const at = now();
          const raw: Record<string, unknown> = { role: 'assistant', stage1: valid.stage1, stage2: valid.stage2, stage3: valid.stage3 };
          // Omitted rather than null when absent, as the seed app writes it.
          if (valid.metadata !== undefined) raw.metadata = valid.metadata;
          raw.created_at = at;
          doc.messages.push(raw);
          doc.updated_at = at;
          return toMessage(raw, doc.messages.length - 1) as AssistantMessage;
        });
      }),

    updateTitle: (userId, id, title) =>
      ctx.track(async () => {
        validateUserId(userId);
        validateRecordId(id);
        const valid = validateTitle(title);
        return change(userId, id, (doc) => {
          doc.title = valid;
          doc.updated_at = now();
          return summaryOf(id, doc);
        });
      }),

    delete: (userId, id) =>
      ctx.track(async () => {
        validateUserId(userId);
        validateRecordId(id);
        const file = fileOf(userId, id);
        await update(
          file,
          (current) => {
            if (current === undefined) throw notFound('conversation', id);
            asConversationDoc(current, file); // a corrupt file is reported, not silently removed
            return { next: REMOVE, result: undefined };
          },
          ctx.lock,
        );
      }),

    search: (userId, text, options = {}) =>
      ctx.track(async () => {
        validateUserId(userId);
        const needle = validateSearchText(text).toLowerCase();
        const limit = clampLimit(options.limit, DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT);
        const found = await scan(userId, (doc) => docMatches(doc, needle));
        return found.slice(0, limit);
      }),
  };
}

/** Newest-updated first, ties by id descending: the keyset order of `list` (negative when `a` comes first). */
function newestFirst(a: Pick<ConversationSummary, 'updatedAt' | 'id'>, b: Pick<ConversationSummary, 'updatedAt' | 'id'>): number {
  if (a.updatedAt !== b.updatedAt) return a.updatedAt > b.updatedAt ? -1 : 1;
  if (a.id !== b.id) return a.id > b.id ? -1 : 1;
  return 0;
}

function decodeListCursor(cursor: string): { updatedAt: string; id: string } {
  const [updatedAt, id] = decodeCursor(cursor, (p) => p.length === 2 && typeof p[0] === 'string' && typeof p[1] === 'string') as [
    string,
    string,
  ];
  return { updatedAt, id };
}

function decodeMessagesCursor(cursor: string): number {
  const [position] = decodeCursor(cursor, (p) => p.length === 1 && Number.isSafeInteger(p[0]) && (p[0] as number) >= 0);
  return position as number;
}

function validateSearchText(text: unknown): string {
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_SEARCH_TEXT) {
    throw invalidInput(`search text must be a string of 1-${MAX_SEARCH_TEXT} characters`, { field: 'text' });
  }
  return text;
}

/** Conversation ids in a user's folder: data files only (temp, lock and stray files are ignored). */
async function conversationIds(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return [];
    throw ioError('list', dir, error);
  }
  return names
    .filter(isDataFileName)
    .map((name) => name.slice(0, -'.json'.length))
    .filter(isValidRecordId);
}

async function forEachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
