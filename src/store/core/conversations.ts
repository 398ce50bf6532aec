import type { TierLimits } from '../../config.ts';
import {
  type AssistantMessage,
  clampLimit,
  DEFAULT_LIST_LIMIT,
  DEFAULT_SEARCH_LIMIT,
  DEFAULT_TITLE,
  MAX_LIST_LIMIT,
  MAX_MESSAGES_LIMIT,
  MAX_SEARCH_LIMIT,
  type Message,
  type UserMessage,
  validateAssistantInput,
  validateContent,
  validateSearchText,
  validateTitle,
} from '../../domain/conversations.ts';
import { newId, validateRecordId, validateUserId } from '../../domain/ids.ts';
import {
  checkMessage,
  conversationLimitText,
  MAX_CONVERSATION_BYTES,
  MAX_CONVERSATION_MESSAGES,
  MESSAGES_PAGE_BYTES,
} from '../../domain/limits.ts';
import { validateAmount } from '../../domain/usage.ts';
import { notFound, PgFerryError } from '../../errors.ts';
import type { ConversationRepository } from '../types.ts';
import type { Appended, ConversationBackend, ConversationFull, NewMessage, StoredMessage } from './backend.ts';
import { decodeListCursor, decodeMessagesCursor, encodeListCursor, encodeMessagesCursor } from './cursors.ts';
import { consumeResult } from './usage.ts';

/**
 * The conversation repository, once for every backend: arguments are
 * validated before any path or query is built, limits clamped, cursors
 * decoded and encoded (store/core/cursors.ts), and stored records turned
 * into domain objects. The backend only stores and fetches.
 */

const CONVERSATION = 'conversation';

/** A stored message as the API shows it; `metadata` is omitted when empty, as the seed app writes it. */
export function toMessage(stored: StoredMessage): Message {
  const { position, createdAt } = stored;
  if (stored.role === 'user') {
    return { role: 'user', position, content: typeof stored.content === 'string' ? stored.content : '', createdAt };
  }
  const message: AssistantMessage = {
    role: 'assistant',
    position,
    stage1: stored.stage1 ?? null,
    stage2: stored.stage2 ?? null,
    stage3: stored.stage3 ?? null,
    createdAt,
  };
  if (stored.metadata !== undefined && stored.metadata !== null) message.metadata = stored.metadata;
  return message;
}

const appendedMessage = (message: NewMessage, appended: Appended): Message => toMessage({ ...message, ...appended });

/** The message's size, or PAYLOAD_TOO_LARGE when it is over the per-message limit (domain/limits.ts). */
function sizeOf(message: NewMessage): number {
  const checked = checkMessage(message);
  if (checked.problem !== undefined) {
    throw new PgFerryError('PAYLOAD_TOO_LARGE', checked.problem, { limit: checked.limit });
  }
  return checked.bytes;
}

const isFull = (result: object): result is ConversationFull => 'full' in result;

/** UNPROCESSABLE: the conversation holds as much as one may; the caller starts a new one. */
function conversationFull(id: string, { full }: ConversationFull): PgFerryError {
  return new PgFerryError(
    'UNPROCESSABLE',
    `conversation ${JSON.stringify(id)} is full: a conversation holds ${conversationLimitText(full)}; start a new one`,
    {
      limit: full === 'messages' ? 'conversationMessages' : 'conversationBytes',
      max: full === 'messages' ? MAX_CONVERSATION_MESSAGES : MAX_CONVERSATION_BYTES,
    },
  );
}

export function createConversationRepository(backend: ConversationBackend, tierLimits: TierLimits): ConversationRepository {
  async function append(userId: string, id: string, message: NewMessage): Promise<Message> {
    const appended = await backend.append(userId, id, message, sizeOf(message));
    if (!appended) throw notFound(CONVERSATION, id);
    if (isFull(appended)) throw conversationFull(id, appended);
    return appendedMessage(message, appended);
  }

  return {
    async create(userId, input = {}) {
      validateUserId(userId);
      const id = input.id === undefined ? newId() : validateRecordId(input.id);
      const title = input.title === undefined ? DEFAULT_TITLE : validateTitle(input.title);
      const summary = await backend.insert(userId, id, title);
      if (!summary) throw new PgFerryError('CONFLICT', `conversation ${JSON.stringify(id)} already exists`, { id });
      return { ...summary, userId, messages: [], nextMessagesCursor: null };
    },

    async get(userId, id, options = {}) {
      validateUserId(userId);
      validateRecordId(id);
      const limit = clampLimit(options.messagesLimit, MAX_MESSAGES_LIMIT, MAX_MESSAGES_LIMIT);
      const from = options.messagesCursor === undefined ? 0 : decodeMessagesCursor(options.messagesCursor);
      // Paged by count and by bytes, so no response is larger than MESSAGES_PAGE_BYTES of messages.
      const found = await backend.read(userId, id, from, limit, MESSAGES_PAGE_BYTES);
      if (!found) throw notFound(CONVERSATION, id);
      const messages = found.messages.map(toMessage);
      const last = messages.at(-1);
      // Positions are 0..messageCount-1 without gaps, so the count says whether more follow.
      const more = last !== undefined && last.position + 1 < found.summary.messageCount;
      const nextMessagesCursor = more ? encodeMessagesCursor(last.position + 1) : null;
      return { ...found.summary, userId, messages, nextMessagesCursor };
    },

    async list(userId, options = {}) {
      validateUserId(userId);
      const limit = clampLimit(options.limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT);
      const after = options.cursor === undefined ? null : decodeListCursor(options.cursor);
      const rows = await backend.listAfter(userId, after, limit + 1);
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        items: page.map(({ updatedKey: _key, ...summary }) => summary),
        nextCursor: rows.length > limit && last ? encodeListCursor(last) : null,
      };
    },

    async addUserMessage(userId, id, content) {
      validateUserId(userId);
      validateRecordId(id);
      return (await append(userId, id, { role: 'user', content: validateContent(content) })) as UserMessage;
    },

    async sendUserMessage(userId, id, content, options = {}) {
      validateUserId(userId);
      validateRecordId(id);
      const message: NewMessage = { role: 'user', content: validateContent(content) };
      const n = validateAmount(options.consume ?? 1);
      const sent = await backend.appendCounted(userId, id, message, n, sizeOf(message));
      if (!sent) throw notFound(CONVERSATION, id);
      if (isFull(sent)) throw conversationFull(id, sent);
      return {
        message: sent.appended ? (appendedMessage(message, sent.appended) as UserMessage) : null,
        usage: consumeResult(userId, sent.usage, tierLimits),
      };
    },

    async addAssistantMessage(userId, id, input) {
      validateUserId(userId);
      validateRecordId(id);
      return (await append(userId, id, { role: 'assistant', ...validateAssistantInput(input) })) as AssistantMessage;
    },

    async updateTitle(userId, id, title) {
      validateUserId(userId);
      validateRecordId(id);
      const summary = await backend.setTitle(userId, id, validateTitle(title));
      if (!summary) throw notFound(CONVERSATION, id);
      return summary;
    },

    async delete(userId, id) {
      validateUserId(userId);
      validateRecordId(id);
      if (!(await backend.remove(userId, id))) throw notFound(CONVERSATION, id);
    },

    async search(userId, text, options = {}) {
      validateUserId(userId);
      const valid = validateSearchText(text);
      const limit = clampLimit(options.limit, DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT);
      return backend.search(userId, valid, limit);
    },
  };
}
