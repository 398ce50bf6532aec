import type postgres from 'postgres';
import type { Database, Sql } from '../../db/database.ts';
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
  type Message,
  type Page,
  type UserMessage,
  validateAssistantInput,
  validateContent,
  validateTitle,
} from '../../domain/conversations.ts';
import { isValidRecordId, newId, validateRecordId, validateUserId } from '../../domain/ids.ts';
import { fromJsonb, toJsonb } from '../../domain/json-values.ts';
import { invalidInput, notFound, PgFerryError } from '../../errors.ts';
import type { Clock, ConversationRepository, GetConversationOptions, ListOptions } from '../types.ts';
import { nowParam, query } from './shared.ts';

/**
 * Conversations on PostgreSQL: one statement (one round trip) per operation.
 *
 * - `conversations.message_count` is denormalised: an append bumps it under
 *   the conversation's row lock and inserts the message at the new count - 1,
 *   in the same statement, so positions are unique and gapless under any
 *   concurrency and a wrong owner simply matches no row (NOT_FOUND).
 * - list() is keyset pagination on (updated_at, id) descending through
 *   conversations_user_updated_idx. The cursor carries updated_at at full
 *   microsecond precision (as text), because the API's millisecond ISO
 *   strings would skip or repeat rows that share a millisecond.
 */

/** Timestamps arrive as ISO 8601 text made by the server (no Date parse and format per row). */
interface SummaryRow {
  id: string;
  title: string;
  created_iso: string;
  updated_iso: string;
  message_count: number;
}

interface ListRow extends SummaryRow {
  /** updated_at as 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (microseconds). */
  updated_key: string;
}

interface MessageRow {
  position: number;
  role: 'user' | 'assistant';
  content: string | null;
  stage1: unknown;
  stage2: unknown;
  stage3: unknown;
  metadata: unknown;
  created_iso: string;
}

interface GetRow extends SummaryRow {
  user_id: string;
  position: number | null;
  role: 'user' | 'assistant' | null;
  content: string | null;
  stage1: unknown;
  stage2: unknown;
  stage3: unknown;
  metadata: unknown;
  message_created_iso: string | null;
}

const CONVERSATION = 'conversation';
const UPDATED_KEY_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const MAX_POSITION = 2 ** 31 - 1;
/** Same rules as the JSON backend (store/json/conversations.ts). */
const DEFAULT_SEARCH_LIMIT = 20;
const MAX_SEARCH_TEXT = 1000;

const toSummary = (row: SummaryRow): ConversationSummary => ({
  id: row.id,
  title: row.title,
  createdAt: row.created_iso,
  updatedAt: row.updated_iso,
  messageCount: row.message_count,
});

function toMessage(row: MessageRow): Message {
  const createdAt = row.created_iso;
  if (row.role === 'user') return { role: 'user', position: row.position, content: row.content ?? '', createdAt };
  const message: AssistantMessage = {
    role: 'assistant',
    position: row.position,
    stage1: fromJsonb(row.stage1),
    stage2: fromJsonb(row.stage2),
    stage3: fromJsonb(row.stage3),
    createdAt,
  };
  if (row.metadata !== null && row.metadata !== undefined) message.metadata = fromJsonb(row.metadata);
  return message;
}

/**
 * A JSONB parameter: non-finite numbers tagged (json-values.ts), SQL NULL for
 * null/undefined. sql.json() pins the parameter type, so postgres.js
 * serialises it once with JSON.stringify (a string would be double-encoded).
 */
const jsonb = (sql: Sql, value: unknown) => sql.json((value === undefined ? null : toJsonb(value)) as postgres.JSONValue);

const decodeListCursor = (cursor: string): [string, string] =>
  decodeCursor(
    cursor,
    (parts) => parts.length === 2 && typeof parts[0] === 'string' && UPDATED_KEY_PATTERN.test(parts[0]) && isValidRecordId(parts[1]),
  ) as [string, string];

const decodeMessagesCursor = (cursor: string): number =>
  decodeCursor(
    cursor,
    (parts) => parts.length === 1 && Number.isInteger(parts[0]) && (parts[0] as number) >= 0 && (parts[0] as number) <= MAX_POSITION,
  )[0] as number;

/**
 * The list() statement, exported so a test can EXPLAIN exactly what runs.
 * Two shapes rather than `$after is null or …`: a generic plan of the OR form
 * could not use the row comparison as an index condition. Fetches limit + 1
 * rows to know whether another page exists. The cursor's timestamp is sent
 * as text (`::text::timestamptz`): typed as timestamptz, postgres.js would
 * round-trip it through a JS Date and cut it to milliseconds.
 * @internal
 */
export function listQuery(sql: Sql, userId: string, after: [string, string] | null, limit: number) {
  // The row comparison matches the index order, so the keyset is an index range scan.
  const keyset = after === null ? sql`` : sql`and (updated_at, id) < (${after[0]}::text::timestamptz, ${after[1]}::text)`;
  return sql<ListRow[]>`
    select id, title, message_count,
           to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as created_iso,
           to_char(updated_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as updated_iso,
           to_char(updated_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as updated_key
      from conversations
     where user_id = ${userId} ${keyset}
     order by updated_at desc, id desc
     limit ${limit + 1}`;
}

/** LIKE pattern for a literal substring: the default escape character is backslash. */
export const likePattern = (text: string): string => `%${text.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;

export interface PostgresConversationsOptions {
  db: Database;
  clock?: Clock;
}

export class PostgresConversations implements ConversationRepository {
  private readonly db: Database;
  private readonly clock: Clock | undefined;

  constructor(options: PostgresConversationsOptions) {
    this.db = options.db;
    this.clock = options.clock;
  }

  async create(userId: string, input: { id?: string; title?: string } = {}): Promise<Conversation> {
    validateUserId(userId);
    const id = input.id === undefined ? newId() : validateRecordId(input.id);
    const title = input.title === undefined ? DEFAULT_TITLE : validateTitle(input.title);
    const at = nowParam(this.clock);
    const rows = await query(
      this.db,
      'conversations.create',
      (sql) =>
        sql<(SummaryRow & { user_id: string })[]>`
        insert into conversations (id, user_id, title, created_at, updated_at)
        values (${id}, ${userId}, ${title}, coalesce(${at}::timestamptz, now()), coalesce(${at}::timestamptz, now()))
        on conflict (id) do nothing
        returning id, user_id, title, message_count,
                  to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as created_iso,
                  to_char(updated_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as updated_iso`,
    );
    const row = rows[0];
    if (!row) throw new PgFerryError('CONFLICT', `conversation ${JSON.stringify(id)} already exists`, { id });
    return { ...toSummary(row), userId: row.user_id, messages: [], nextMessagesCursor: null };
  }

  async get(userId: string, id: string, options: GetConversationOptions = {}): Promise<Conversation> {
    validateUserId(userId);
    validateRecordId(id);
    const limit = clampLimit(options.messagesLimit, MAX_MESSAGES_LIMIT, MAX_MESSAGES_LIMIT);
    const from = options.messagesCursor === undefined ? 0 : decodeMessagesCursor(options.messagesCursor);
    // One round trip: the conversation left-joined to one page of its
    // messages (limit + 1 to detect a next page). The conversation's columns
    // repeat on each row, which is cheaper than a second query.
    const rows = await query(
      this.db,
      'conversations.get',
      (sql) => sql<GetRow[]>`
        select c.id, c.user_id, c.title, c.message_count,
               to_char(c.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as created_iso,
               to_char(c.updated_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as updated_iso,
               m.position, m.role, m.content, m.stage1_data as stage1, m.stage2_data as stage2, m.stage3_data as stage3, m.metadata,
               to_char(m.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as message_created_iso
          from conversations c
          left join lateral (
                select position, role, content, stage1_data, stage2_data, stage3_data, metadata, created_at
                  from messages
                 where conversation_id = c.id and position >= ${from}
                 order by position
                 limit ${limit + 1}
               ) m on true
         where c.id = ${id} and c.user_id = ${userId}
         order by m.position`,
      { idempotent: true },
    );
    const first = rows[0];
    if (!first) throw notFound(CONVERSATION, id);
    const messages: Message[] = [];
    for (const row of rows.slice(0, limit)) {
      if (row.position === null || row.role === null || row.message_created_iso === null) break;
      messages.push(toMessage({ ...row, position: row.position, role: row.role, created_iso: row.message_created_iso }));
    }
    const last = messages[messages.length - 1];
    const nextMessagesCursor = rows.length > limit && last ? encodeCursor([last.position + 1]) : null;
    return { ...toSummary(first), userId: first.user_id, messages, nextMessagesCursor };
  }

  async list(userId: string, options: ListOptions = {}): Promise<Page<ConversationSummary>> {
    validateUserId(userId);
    const limit = clampLimit(options.limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT);
    const after = options.cursor === undefined ? null : decodeListCursor(options.cursor);
    const rows = await query(this.db, 'conversations.list', (sql) => listQuery(sql, userId, after, limit), { idempotent: true });
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      items: page.map(toSummary),
      nextCursor: rows.length > limit && last ? encodeCursor([last.updated_key, last.id]) : null,
    };
  }

  async addUserMessage(userId: string, id: string, content: string): Promise<UserMessage> {
    validateUserId(userId);
    validateRecordId(id);
    validateContent(content);
    const appended = await this.append(userId, id, { role: 'user', content });
    return { role: 'user', content, ...appended };
  }

  async addAssistantMessage(userId: string, id: string, input: AssistantMessageInput): Promise<AssistantMessage> {
    validateUserId(userId);
    validateRecordId(id);
    const message = validateAssistantInput(input);
    const appended = await this.append(userId, id, { role: 'assistant', ...message });
    return { role: 'assistant', ...message, ...appended };
  }

  /**
   * One statement: the UPDATE takes the conversation's row lock (a concurrent
   * append waits, then re-reads message_count), so each message gets its own
   * gapless position; a wrong owner matches no row → NOT_FOUND.
   */
  private async append(
    userId: string,
    id: string,
    message: { role: 'user' | 'assistant'; content?: string } & Partial<AssistantMessageInput>,
  ): Promise<{ position: number; createdAt: string }> {
    const at = nowParam(this.clock);
    const rows = await query(
      this.db,
      `conversations.add${message.role === 'user' ? 'User' : 'Assistant'}Message`,
      (sql) =>
        sql<{ position: number; created_iso: string }[]>`
        with c as (
          update conversations
             set message_count = message_count + 1, updated_at = coalesce(${at}::timestamptz, now())
           where id = ${id} and user_id = ${userId}
          returning id, message_count, updated_at
        )
        insert into messages (conversation_id, position, role, content, stage1_data, stage2_data, stage3_data, metadata, created_at)
        select c.id, c.message_count - 1, ${message.role}, ${message.content ?? null},
               ${jsonb(sql, message.stage1)}, ${jsonb(sql, message.stage2)}, ${jsonb(sql, message.stage3)}, ${jsonb(sql, message.metadata)},
               c.updated_at
          from c
        returning position, to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as created_iso`,
    );
    const row = rows[0];
    if (!row) throw notFound(CONVERSATION, id);
    return { position: row.position, createdAt: row.created_iso };
  }

  async updateTitle(userId: string, id: string, title: string): Promise<ConversationSummary> {
    validateUserId(userId);
    validateRecordId(id);
    validateTitle(title);
    const at = nowParam(this.clock);
    const rows = await query(
      this.db,
      'conversations.updateTitle',
      (sql) => sql<SummaryRow[]>`
        update conversations
           set title = ${title}, updated_at = coalesce(${at}::timestamptz, now())
         where id = ${id} and user_id = ${userId}
        returning id, title, message_count,
                  to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as created_iso,
                  to_char(updated_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as updated_iso`,
      { idempotent: true },
    );
    const row = rows[0];
    if (!row) throw notFound(CONVERSATION, id);
    return toSummary(row);
  }

  async delete(userId: string, id: string): Promise<void> {
    validateUserId(userId);
    validateRecordId(id);
    // Messages go with it: messages.conversation_id is `on delete cascade`.
    const rows = await query(
      this.db,
      'conversations.delete',
      (sql) => sql`delete from conversations where id = ${id} and user_id = ${userId} returning id`,
    );
    if (rows.length === 0) throw notFound(CONVERSATION, id);
  }

  async search(userId: string, text: string, options: { limit?: number } = {}): Promise<ConversationSummary[]> {
    validateUserId(userId);
    if (typeof text !== 'string' || text.length === 0 || text.length > MAX_SEARCH_TEXT) {
      throw invalidInput(`search text must be a string of 1-${MAX_SEARCH_TEXT} characters`, { field: 'text' });
    }
    const limit = clampLimit(options.limit, DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT);
    const pattern = likePattern(text);
    const rows = await query(
      this.db,
      'conversations.search',
      (sql) => sql<SummaryRow[]>`
        select c.id, c.title, c.message_count,
               to_char(c.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as created_iso,
               to_char(c.updated_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as updated_iso
          from conversations c
         where c.user_id = ${userId}
           and (c.title ilike ${pattern}
                or exists (select 1 from messages m
                            where m.conversation_id = c.id and m.role = 'user' and m.content ilike ${pattern}))
         order by c.updated_at desc, c.id desc
         limit ${limit}`,
      { idempotent: true },
    );
    return rows.map(toSummary);
  }
}
