import { isValidRecordId } from '../../../domain/ids.ts';
import { prepareConversation } from '../../canonical.ts';
import { fileStem } from '../../sources/chat.ts';
import { validateConversation } from '../../validate.ts';
import type { KindDescriptor, KindScan, PrepareContext, Prepared, PrepareInput } from '../types.ts';
import { type ConversationLoad, encodeConversation, pruneConversations, writeConversations } from './load.ts';
import { compareConversations, conversationKeys } from './verify.ts';

/**
 * The chat app's conversations (seeds 001 and 003): one file per
 * conversation, loaded into `conversations` and `messages`.
 *
 *   conversations/<userId>/<conversationId>.json   per-user layout
 *   conversations/<conversationId>.json            original single-user layout (--default-user)
 */
export const conversationsKind: KindDescriptor<ConversationLoad> = {
  name: 'conversations',
  logKind: 'conversation',
  keyLabel: 'conversation id',
  folders: ['conversations'],
  module: import.meta.url,
  scan,
  fileKey: fileStem,
  isValidKey: isValidRecordId,
  // Ids were minted per user by the chat app: two users' folders can hold the same id, and both are kept.
  keepsDuplicates: true,
  prepare,
  childRows: (record) => record.messageCount,
  load: { table: 'conversations', keyColumn: 'id', write: writeConversations, prune: pruneConversations },
  verify: { compare: compareConversations, databaseKeys: conversationKeys },
};

async function scan(walk: KindScan): Promise<void> {
  for (const entry of await walk.folder('conversations')) {
    if (entry.type === 'file' && entry.name.endsWith('.json')) walk.add(entry);
    else if (entry.type === 'dir') {
      for (const inner of await walk.list(entry)) {
        if (inner.type === 'file' && inner.name.endsWith('.json')) walk.add(inner);
        else if (inner.type === 'dir') {
          walk.problem({ rel: inner.rel, key: null, reason: 'unexpected directory below a user folder: not read', severity: 'warning' });
        } else walk.ignore();
      }
    } else walk.ignore();
  }
}

function prepare({ file, document, mtimeMs, key }: PrepareInput, context: PrepareContext): Prepared<ConversationLoad> {
  const result = validateConversation(file, document, context.settings, mtimeMs);
  if (!result.ok) return result;
  const row = key === undefined ? result.row : { ...result.row, id: key };
  const prepared = prepareConversation(row, file.rel, file.size);
  if (typeof prepared === 'string') return { ok: false, key: result.key, reason: prepared, warnings: result.warnings };
  // Verify compares hashes only: no payload, and the messages are dropped here.
  const record: ConversationLoad =
    context.encode === null
      ? {
          key: prepared.key,
          file: prepared.file,
          hash: prepared.hash,
          row: prepared.row,
          messageCount: prepared.messages.length,
          payload: '',
        }
      : encodeConversation(prepared, context.encode);
  return { ok: true, record, warnings: result.warnings };
}
