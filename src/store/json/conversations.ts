import { readdir } from 'node:fs/promises';
import type { ConversationSummary } from '../../domain/conversations.ts';
import { isValidRecordId } from '../../domain/ids.ts';
import { conversationLimitBroken } from '../../domain/limits.ts';
import { foldCase } from '../../domain/search-fold.ts';
import { isPgFerryError } from '../../errors.ts';
import { appendMessage, type ConversationRow, newConversationDoc, retitle } from '../../formats/chat-conversation.ts';
import { isoFromUs } from '../../formats/timestamps.ts';
import type { Appended, ConversationBackend, ConversationFull, CountedAppend, ListedSummary, NewMessage } from '../core/backend.ts';
import { compareListKeys } from '../core/cursors.ts';
import type { JsonContext } from './context.ts';
import {
  type ConversationDoc,
  type ConversationFile,
  rawMessageOf,
  readConversationFile,
  rowMatches,
  storedMessageOf,
  summaryOf,
  updatedKeyOf,
} from './conversation-file.ts';
import { isDataFileName, REMOVE, readJsonFileStat, type UpdateOutcome, update } from './files.ts';
import { errorCode, ioError } from './locks.ts';
import { consumeInFile } from './usage.ts';

/**
 * Conversations on JSON files: `DATA_DIR/conversations/<userId>/<id>.json`,
 * the storage half of the repository (store/core/conversations.ts validates
 * and shapes). Ownership is the folder, so another user's conversation is
 * simply not found. Every change touches only its own file (append cost does
 * not grow with the number of conversations); `list` and `search` scan the
 * user's folder, skipping (and logging) files that do not parse.
 */

/** Files read at once while scanning a folder: enough to overlap I/O, bounded so a big folder cannot exhaust descriptors. */
const SCAN_CONCURRENCY = 16;

export function createJsonConversations(ctx: JsonContext): ConversationBackend {
  const userDir = (userId: string) => ctx.pathIn('conversations', userId);
  const fileOf = (userId: string, id: string) => ctx.pathIn('conversations', userId, `${id}.json`);

  /**
   * Read-modify-write an existing conversation under its locks; undefined
   * when it does not exist. `fn` changes the document in place (through
   * formats/chat-conversation.ts, in the file's own style) and returns
   * `write: false` to leave the file as it is. The file's modification time is
   * set to the store's clock: in the app's files it is the only record of a change.
   */
  function change<R>(
    userId: string,
    id: string,
    fn: (file: ConversationFile, atUs: number) => Promise<{ write: boolean; result: R }> | { write: boolean; result: R },
  ): Promise<R | undefined> {
    const path = fileOf(userId, id);
    return ctx.track(() =>
      update(
        path,
        async (current, mtimeMs): Promise<UpdateOutcome<R | undefined>> => {
          if (current === undefined) return { result: undefined };
          const file = readConversationFile(current, path, userId, id, mtimeMs);
          const at = ctx.clock();
          const { write, result } = await fn(file, at.getTime() * 1000);
          return { next: write ? file.doc : undefined, result, modifiedAt: at };
        },
        ctx.lock,
      ),
    );
  }

  /** What a document says once written at `atUs` (its summary after a change). */
  const reread = (doc: ConversationDoc, path: string, userId: string, id: string, atUs: number) =>
    readConversationFile(doc, path, userId, id, atUs / 1000).row;

  /** Every readable conversation of a user (optionally only those `keep` accepts), in keyset order. */
  async function scan(userId: string, keep?: (row: ConversationRow) => boolean): Promise<ListedSummary[]> {
    const ids = await conversationIds(userDir(userId));
    const found: ListedSummary[] = [];
    await forEachLimited(ids, SCAN_CONCURRENCY, async (id) => {
      const row = await readForScan(userId, id);
      if (row && (!keep || keep(row))) found.push({ ...summaryOf(row), updatedKey: updatedKeyOf(row) });
    });
    return found.sort(compareListKeys);
  }

  async function readForScan(userId: string, id: string): Promise<ConversationRow | undefined> {
    const path = fileOf(userId, id);
    try {
      const read = await readJsonFileStat(path);
      return read === undefined ? undefined : readConversationFile(read.value, path, userId, id, read.mtimeMs).row;
    } catch (error) {
      if (!isPgFerryError(error, 'CORRUPT_DATA')) throw error;
      // One bad file must not hide a user's other conversations; the log names it for repair.
      ctx.logger.warn({ path, err: error }, 'skipping corrupt conversation file');
      return undefined;
    }
  }

  /** Would a message of `bytes` take this conversation past its limits? Then it is full. */
  const fullFor = (file: ConversationFile, bytes: number): ConversationFull | undefined => {
    const broken = conversationLimitBroken(file.row.messages.length, file.row.bytes, bytes);
    return broken === undefined ? undefined : { full: broken };
  };

  /** Append in the file's style; where the message landed. */
  const appendTo = (file: ConversationFile, message: NewMessage, atUs: number): Appended => {
    appendMessage(file.doc, rawMessageOf(message), atUs);
    return { position: file.doc.messages.length - 1, createdAt: isoFromUs(atUs) };
  };

  return {
    insert: (userId, id, title) =>
      ctx.track(async () => {
        const at = ctx.clock();
        const doc = newConversationDoc(id, userId, title, at.getTime() * 1000);
        const path = fileOf(userId, id);
        const created = await update(
          path,
          (current) => (current === undefined ? { next: doc, result: true, modifiedAt: at } : { result: false }),
          ctx.lock,
        );
        return created ? summaryOf(reread(doc, path, userId, id, at.getTime() * 1000)) : undefined;
      }),

    read: (userId, id, from, count, maxBytes) =>
      ctx.track(async () => {
        const path = fileOf(userId, id);
        const read = await readJsonFileStat(path);
        if (read === undefined) return undefined;
        const { row } = readConversationFile(read.value, path, userId, id, read.mtimeMs);
        const end = pageEnd(row.messages, from, count, maxBytes);
        const messages = row.messages.slice(from, end).map((m, i) => storedMessageOf(m, from + i));
        return { summary: summaryOf(row), messages };
      }),

    listAfter: (userId, after, count) =>
      ctx.track(async () => {
        const all = await scan(userId);
        const rest = after ? all.filter((s) => compareListKeys(s, after) > 0) : all;
        return rest.slice(0, count);
      }),

    append: (userId, id, message, bytes) =>
      change(userId, id, (file, atUs): { write: boolean; result: Appended | ConversationFull } => {
        const full = fullFor(file, bytes);
        if (full) return { write: false, result: full };
        return { write: true, result: appendTo(file, message, atUs) };
      }),

    // The conversation's locks, then the usage file's (always in this order, and nothing takes them the
    // other way round, so no deadlock). The count is written first: a crash between the two writes costs
    // the user one query rather than giving a message away for free.
    appendCounted: (userId, id, message, n, bytes) =>
      change(userId, id, async (file, atUs): Promise<{ write: boolean; result: CountedAppend | ConversationFull }> => {
        const full = fullFor(file, bytes); // checked first: a full conversation counts no query
        if (full) return { write: false, result: full };
        const usage = await consumeInFile(ctx, userId, n);
        if (!usage.allowed) return { write: false, result: { usage, appended: null } };
        return { write: true, result: { usage, appended: appendTo(file, message, atUs) } };
      }),

    setTitle: (userId, id, title) =>
      change(userId, id, (file, atUs) => {
        retitle(file.doc, title, atUs);
        return { write: true, result: summaryOf(reread(file.doc, fileOf(userId, id), userId, id, atUs)) };
      }),

    remove: (userId, id) => {
      const path = fileOf(userId, id);
      return ctx.track(() =>
        update(
          path,
          (current, mtimeMs) => {
            if (current === undefined) return { result: false };
            readConversationFile(current, path, userId, id, mtimeMs); // a corrupt file is reported, not silently removed
            return { next: REMOVE, result: true };
          },
          ctx.lock,
        ),
      );
    },

    search: (userId, text, limit) =>
      ctx.track(async () => {
        const needle = foldCase(text);
        const found = await scan(userId, (row) => rowMatches(row, needle));
        return found.slice(0, limit).map(({ updatedKey: _key, ...summary }): ConversationSummary => summary);
      }),
  };
}

/** The end (exclusive) of the page from `from`: at most `count` messages and `maxBytes` of them, at least one. */
function pageEnd(messages: ReadonlyArray<{ bytes: number }>, from: number, count: number, maxBytes: number): number {
  const last = Math.min(messages.length, from + count);
  let end = from;
  let bytes = 0;
  while (end < last) {
    bytes += messages[end]!.bytes;
    if (bytes > maxBytes && end > from) break;
    end++;
  }
  return end;
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
