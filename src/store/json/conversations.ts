import { readdir } from 'node:fs/promises';
import type { ConversationSummary } from '../../domain/conversations.ts';
import { isValidRecordId } from '../../domain/ids.ts';
import { isPgFerryError } from '../../errors.ts';
import type { ConversationBackend, CountedAppend, ListedSummary } from '../core/backend.ts';
import { compareListKeys } from '../core/cursors.ts';
import type { JsonContext } from './context.ts';
import {
  asConversationDoc,
  type ConversationDoc,
  docMatches,
  rawMessageOf,
  storedMessageOf,
  summaryOf,
  updatedKeyOf,
} from './conversation-file.ts';
import { isDataFileName, REMOVE, readJsonFile, type UpdateOutcome, update } from './files.ts';
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
  const now = () => ctx.clock().toISOString();

  /**
   * Read-modify-write an existing conversation under its locks; undefined
   * when it does not exist. `fn` returns `write: false` to leave the file as it is.
   */
  function change<R>(
    userId: string,
    id: string,
    fn: (doc: ConversationDoc) => Promise<{ write: boolean; result: R }> | { write: boolean; result: R },
  ): Promise<R | undefined> {
    const file = fileOf(userId, id);
    return ctx.track(() =>
      update(
        file,
        async (current): Promise<UpdateOutcome<R | undefined>> => {
          if (current === undefined) return { result: undefined };
          const doc = asConversationDoc(current, file);
          const { write, result } = await fn(doc);
          return { next: write ? doc : undefined, result };
        },
        ctx.lock,
      ),
    );
  }

  /** Every readable conversation of a user (optionally only those `keep` accepts), in keyset order. */
  async function scan(userId: string, keep?: (doc: ConversationDoc) => boolean): Promise<ListedSummary[]> {
    const ids = await conversationIds(userDir(userId));
    const found: ListedSummary[] = [];
    await forEachLimited(ids, SCAN_CONCURRENCY, async (id) => {
      const doc = await readForScan(fileOf(userId, id));
      if (doc && (!keep || keep(doc))) found.push({ ...summaryOf(id, doc), updatedKey: updatedKeyOf(doc) });
    });
    return found.sort(compareListKeys);
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
    insert: (userId, id, title) =>
      ctx.track(async () => {
        const at = now();
        const doc: ConversationDoc = { id, user_id: userId, created_at: at, updated_at: at, title, messages: [] };
        const created = await update(
          fileOf(userId, id),
          (current) => (current === undefined ? { next: doc, result: true } : { result: false }),
          ctx.lock,
        );
        return created ? summaryOf(id, doc) : undefined;
      }),

    read: (userId, id, from, count) =>
      ctx.track(async () => {
        const file = fileOf(userId, id);
        const value = await readJsonFile(file);
        if (value === undefined) return undefined;
        const doc = asConversationDoc(value, file);
        const messages = doc.messages.slice(from, from + count).map((raw, i) => storedMessageOf(raw, from + i));
        return { summary: summaryOf(id, doc), messages };
      }),

    listAfter: (userId, after, count) =>
      ctx.track(async () => {
        const all = await scan(userId);
        const rest = after ? all.filter((s) => compareListKeys(s, after) > 0) : all;
        return rest.slice(0, count);
      }),

    append: (userId, id, message) =>
      change(userId, id, (doc) => {
        const at = now();
        doc.messages.push(rawMessageOf(message, at));
        doc.updated_at = at;
        return { write: true, result: { position: doc.messages.length - 1, createdAt: at } };
      }),

    // The conversation's locks, then the usage file's (always in this order, and nothing takes them the
    // other way round, so no deadlock). The count is written first: a crash between the two writes costs
    // the user one query rather than giving a message away for free.
    appendCounted: (userId, id, message, n) =>
      change(userId, id, async (doc): Promise<{ write: boolean; result: CountedAppend }> => {
        const usage = await consumeInFile(ctx, userId, n);
        if (!usage.allowed) return { write: false, result: { usage, appended: null } };
        const at = now();
        doc.messages.push(rawMessageOf(message, at));
        doc.updated_at = at;
        return { write: true, result: { usage, appended: { position: doc.messages.length - 1, createdAt: at } } };
      }),

    setTitle: (userId, id, title) =>
      change(userId, id, (doc) => {
        doc.title = title;
        doc.updated_at = now();
        return { write: true, result: summaryOf(id, doc) };
      }),

    remove: (userId, id) => {
      const file = fileOf(userId, id);
      return ctx.track(() =>
        update(
          file,
          (current) => {
            if (current === undefined) return { result: false };
            asConversationDoc(current, file); // a corrupt file is reported, not silently removed
            return { next: REMOVE, result: true };
          },
          ctx.lock,
        ),
      );
    },

    search: (userId, text, limit) =>
      ctx.track(async () => {
        const needle = text.toLowerCase();
        const found = await scan(userId, (doc) => docMatches(doc, needle));
        return found.slice(0, limit).map(({ updatedKey: _key, ...summary }): ConversationSummary => summary);
      }),
  };
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
