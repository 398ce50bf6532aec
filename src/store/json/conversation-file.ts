import type { ConversationSummary } from '../../domain/conversations.ts';
import { foldCase } from '../../domain/search-fold.ts';
import { type ConversationDoc, type ConversationRow, type MessageRow, readConversation } from '../../formats/chat-conversation.ts';
import { plainJson } from '../../formats/json-text.ts';
import { isoFromUs } from '../../formats/timestamps.ts';
import type { NewMessage, StoredMessage } from '../core/backend.ts';
import { corruptFile } from './files.ts';

/**
 * The JSON backend's view of a conversation file. The file format itself —
 * what a file may hold, how it is read, how a change is written in the app's
 * own style — is src/formats/chat-conversation.ts, shared with the importer,
 * so the store accepts exactly what `pgferry import` accepts and reads it
 * identically. This module maps it to the core's storage types.
 */

export type { ConversationDoc } from '../../formats/chat-conversation.ts';

/** A file as read: the document (changed in place and written back whole) and what it says. */
export interface ConversationFile {
  doc: ConversationDoc;
  row: ConversationRow;
}

/**
 * Read a parsed file of `userId`'s folder; CORRUPT_DATA naming the file and
 * the reason when the importer would reject it too.
 */
export function readConversationFile(value: unknown, filePath: string, userId: string, id: string, mtimeMs: number): ConversationFile {
  const result = readConversation(value, { stem: id, folderUser: userId, mtimeMs, mtimeIsUpdate: true });
  if (!result.ok) throw corruptFile(filePath, result.reason);
  return { doc: value as ConversationDoc, row: result.row };
}

export function summaryOf(row: ConversationRow): ConversationSummary {
  return {
    id: row.id,
    title: row.title,
    createdAt: isoFromUs(row.createdUs),
    updatedAt: isoFromUs(row.updatedUs),
    messageCount: row.messages.length,
  };
}

/** updatedAt at microsecond precision, 'YYYY-MM-DDTHH:MM:SS.ffffffZ': the list keyset, as PostgreSQL keeps it. */
export function updatedKeyOf(row: ConversationRow): string {
  const ms = Math.floor(row.updatedUs / 1000);
  return `${new Date(ms).toISOString().slice(0, 23)}${String(row.updatedUs - ms * 1000).padStart(3, '0')}Z`;
}

/** A message of the file for the core: exact numbers (2.0, big integers) stay in the file; callers get plain numbers. */
export function storedMessageOf(message: MessageRow, position: number): StoredMessage {
  const stored: StoredMessage = { position, role: message.role, content: message.content, createdAt: isoFromUs(message.createdUs) };
  if (message.role === 'assistant') {
    stored.stage1 = plainJson(message.stage1);
    stored.stage2 = plainJson(message.stage2);
    stored.stage3 = plainJson(message.stage3);
    if (message.metadata !== undefined) stored.metadata = plainJson(message.metadata);
  }
  return stored;
}

/** A new message in the file's shape: `metadata` omitted when absent, as the seed app writes it. */
export function rawMessageOf(message: NewMessage): Record<string, unknown> {
  if (message.role === 'user') return { role: 'user', content: message.content };
  const raw: Record<string, unknown> = { role: 'assistant', stage1: message.stage1, stage2: message.stage2, stage3: message.stage3 };
  if (message.metadata !== undefined) raw.metadata = message.metadata;
  return raw;
}

/** Case-insensitive substring match on the title and user messages (assistant stages are not searched); `needle` is folded. */
export function rowMatches(row: ConversationRow, needle: string): boolean {
  if (foldCase(row.title).includes(needle)) return true;
  return row.messages.some((m) => m.role === 'user' && foldCase(m.content as string).includes(needle));
}
