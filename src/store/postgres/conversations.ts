import type postgres from 'postgres';
import type { TierLimits } from '../../config.ts';
import type { Sql } from '../../db/database.ts';
import type { ConversationSummary } from '../../domain/conversations.ts';
import { fromJsonb, toJsonb } from '../../domain/json-values.ts';
import { MAX_CONVERSATION_BYTES, MAX_CONVERSATION_MESSAGES } from '../../domain/limits.ts';
import { foldCase, foldTranslation } from '../../domain/search-fold.ts';
import { type Logger, silentLogger } from '../../log.ts';
import type { Appended, ConversationBackend, ConversationFull, ListedSummary, NewMessage, StoredMessage } from '../core/backend.ts';
import type { ListKey } from '../core/cursors.ts';
import type { Clock } from '../types.ts';
import { nowParam, query, type SqlRunner } from './shared.ts';
import { type ConsumeRow, consumeCtes, type LimitParams, limitParams, RERUN, untilDecided, usageStateOf } from './usage.ts';

/**
 * Conversations on PostgreSQL: one statement (one round trip) per
 * operation; the storage half of the repository (store/core/conversations.ts
 * validates and shapes).
 *
 * - `conversations.message_count` is denormalised: an append bumps it under
 *   the conversation's row lock and inserts the message at the new count - 1,
 *   in the same statement, so positions are unique and gapless under any
 *   concurrency and a wrong owner simply matches no row (not found).
 * - list() is keyset pagination on (updated_at, id) descending through
 *   conversations_user_updated_idx. The keyset carries updated_at at full
 *   microsecond precision (as text), because the API's millisecond ISO
 *   strings would skip or repeat rows that share a millisecond.
 * - Sizes (domain/limits.ts) are measured in SQL by messageBytesSql: the
 *   page of a GET stops at its byte budget without loading the rest, and an
 *   append checks the conversation's room under its row lock.
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

interface GetRow extends SummaryRow {
  position: number | null;
  role: 'user' | 'assistant' | null;
  content: string | null;
  stage1: unknown;
  stage2: unknown;
  stage3: unknown;
  metadata: unknown;
  message_created_iso: string | null;
}

interface AppendRow {
  position: number;
  created_iso: string;
}

/** What an append statement reports: whether the conversation is the user's, whether it was full, where the message went. */
interface AppendResultRow extends Partial<AppendRow> {
  found: boolean;
  over_limit: ConversationFull['full'] | null;
}

interface SendRow extends Partial<ConsumeRow>, AppendResultRow {}

/**
 * A stored message's size as domain/limits.ts measures it: its content as a
 * JSON string, or its stages' JSON (a null stage 4 bytes, no metadata 0).
 * PostgreSQL prints JSONB with a space after each `,` and `:`, so for stage
 * data this counts a little more than the compact form the JSON backend
 * measures (docs/storage.md): PostgreSQL never holds more than the limit.
 */
const messageBytesSql = (m: string) => `(case when ${m}.role = 'user' then coalesce(octet_length(to_json(${m}.content)::text), 2)
  else coalesce(octet_length(${m}.stage1_data::text), 4) + coalesce(octet_length(${m}.stage2_data::text), 4)
     + coalesce(octet_length(${m}.stage3_data::text), 4) + coalesce(octet_length(${m}.metadata::text), 0) end)::bigint`;

/**
 * CTEs `target` (the user's conversation, row-locked, with its size) and
 * `room` (null when a message of `bytes` fits, else the limit it breaks).
 */
const roomCtes = (sql: Sql, userId: string, id: string, bytes: number) => sql`
    target as materialized (
      select c.id, c.message_count,
             (select coalesce(sum(${sql.unsafe(messageBytesSql('m'))}), 0) from messages m where m.conversation_id = c.id) as bytes
        from conversations c
       where c.id = ${id} and c.user_id = ${userId}
         for update of c
    ),
    room as materialized (
      select case when message_count + 1 > ${MAX_CONVERSATION_MESSAGES}::int then 'messages'
                  when bytes + ${bytes}::bigint > ${MAX_CONVERSATION_BYTES}::bigint then 'bytes' end as over_limit
        from target
    )`;

/** The core's answer from an append statement's row. */
function appendOutcome(row: AppendResultRow | undefined): Appended | ConversationFull | undefined {
  if (!row?.found) return undefined;
  if (row.over_limit !== null) return { full: row.over_limit };
  return toAppended(row as AppendRow);
}

/**
 * The SummaryRow columns of `table` (a name or alias), timestamps formatted
 * by the server as the API shows them: ISO 8601, milliseconds, UTC.
 */
const summaryColumns = (sql: Sql, table: 'c' | 'conversations') =>
  sql.unsafe(`${table}.id, ${table}.title, ${table}.message_count,
    to_char(${table}.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as created_iso,
    to_char(${table}.updated_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as updated_iso`);

const toSummary = (row: SummaryRow): ConversationSummary => ({
  id: row.id,
  title: row.title,
  createdAt: row.created_iso,
  updatedAt: row.updated_iso,
  messageCount: row.message_count,
});

const toStoredMessage = (row: GetRow & { position: number; role: 'user' | 'assistant' }): StoredMessage => ({
  position: row.position,
  role: row.role,
  content: row.content,
  stage1: fromJsonb(row.stage1),
  stage2: fromJsonb(row.stage2),
  stage3: fromJsonb(row.stage3),
  metadata: row.metadata === null ? null : fromJsonb(row.metadata),
  createdAt: row.message_created_iso,
});

const toAppended = (row: AppendRow): Appended => ({ position: row.position, createdAt: row.created_iso });

/**
 * A JSONB parameter: non-finite numbers tagged (json-values.ts), SQL NULL for
 * null/undefined. sql.json() pins the parameter type, so postgres.js
 * serialises it once with JSON.stringify (a string would be double-encoded).
 */
const jsonb = (sql: Sql, value: unknown) => sql.json((value === undefined ? null : toJsonb(value)) as postgres.JSONValue);

/**
 * The list() statement, exported so a test can EXPLAIN exactly what runs.
 * Two shapes rather than `$after is null or …`: a generic plan of the OR form
 * could not use the row comparison as an index condition. The keyset's
 * timestamp is sent as text (`::text::timestamptz`): typed as timestamptz,
 * postgres.js would round-trip it through a JS Date and cut it to milliseconds.
 * @internal
 */
export function listQuery(sql: Sql, userId: string, after: ListKey | null, count: number) {
  // The row comparison matches the index order, so the keyset is an index range scan.
  const keyset = after === null ? sql`` : sql`and (updated_at, id) < (${after.updatedKey}::text::timestamptz, ${after.id}::text)`;
  return sql<ListRow[]>`
    select ${summaryColumns(sql, 'conversations')},
           to_char(updated_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as updated_key
      from conversations
     where user_id = ${userId} ${keyset}
     order by updated_at desc, id desc
     limit ${count}`;
}

/**
 * An append in two parts: the CTE `bumped` and the INSERT that reads it. The
 * UPDATE takes the conversation's row lock (a concurrent append waits, then
 * re-reads message_count), so each message gets its own gapless position; a
 * wrong owner, or a false `gate`, matches no row and nothing is written.
 */
const bumpCte = (sql: Sql, userId: string, id: string, at: Date | null, gate: postgres.Fragment) => sql`
    bumped as (
      update conversations
         set message_count = message_count + 1, updated_at = coalesce(${at}::timestamptz, now())
       where id = ${id} and user_id = ${userId} and ${gate}
      returning id, message_count, updated_at
    )`;

function insertBumped(sql: Sql, message: NewMessage) {
  const assistant = message.role === 'assistant' ? message : undefined;
  return sql`
    insert into messages (conversation_id, position, role, content, stage1_data, stage2_data, stage3_data, metadata, created_at)
    select bumped.id, bumped.message_count - 1, ${message.role}, ${message.role === 'user' ? message.content : null},
           ${jsonb(sql, assistant?.stage1)}, ${jsonb(sql, assistant?.stage2)}, ${jsonb(sql, assistant?.stage3)},
           ${jsonb(sql, assistant?.metadata)}, bumped.updated_at
      from bumped
    returning position, to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as created_iso`;
}

/**
 * The atomic send as one statement: `target` locks the user's conversation
 * row first (a concurrent delete either finishes before — no row, nothing
 * counted — or waits for us); the quota CTEs count only when it exists; the
 * append runs only when the count was allowed. Lock order is always
 * conversation then usage row, and no statement takes them the other way.
 * @internal
 */
export function sendQuery(
  sql: Sql,
  userId: string,
  id: string,
  message: NewMessage,
  n: number,
  at: Date | null,
  limits: LimitParams,
  bytes: number,
) {
  return sql<SendRow[]>`
    with ${roomCtes(sql, userId, id, bytes)},
    ${consumeCtes(sql, userId, n, at, limits, sql`exists (select 1 from room where over_limit is null)`)},
    ${bumpCte(sql, userId, id, at, sql`exists (select 1 from decision where allowed)`)},
    appended as (${insertBumped(sql, message)})
    select exists (select 1 from target) as found, (select over_limit from room) as over_limit, decision.*, appended.*
      from (select 1) one
      left join decision on true
      left join appended on true`;
}

/** A plain append as one statement: the room check under the row lock, then the append. @internal */
export function appendQuery(sql: Sql, userId: string, id: string, message: NewMessage, at: Date | null, bytes: number) {
  return sql<AppendResultRow[]>`
    with ${roomCtes(sql, userId, id, bytes)},
    ${bumpCte(sql, userId, id, at, sql`exists (select 1 from room where over_limit is null)`)},
    appended as (${insertBumped(sql, message)})
    select exists (select 1 from target) as found, (select over_limit from room) as over_limit, appended.*
      from (select 1) one
      left join appended on true`;
}

/**
 * One page of a conversation's messages, walked from position `from` one
 * message at a time (positions are gapless) and stopped at `count` messages
 * or once the next would pass `maxBytes`: PostgreSQL sizes only the page and
 * the one message after it, and only the page's rows are sent. The first
 * message is always taken, so a page is never empty while messages remain.
 * @internal
 */
export function pageQuery(sql: Sql, userId: string, id: string, from: number, count: number, maxBytes: number) {
  const bytesOf = sql.unsafe(messageBytesSql('m'));
  return sql<GetRow[]>`
    with recursive page (position, total, n) as (
        select m.position, ${bytesOf}, 1
          from messages m
         where m.conversation_id = ${id} and m.position = ${from}
           and exists (select 1 from conversations c where c.id = ${id} and c.user_id = ${userId})
      union all
        select m.position, page.total + ${bytesOf}, page.n + 1
          from page
          join messages m on m.conversation_id = ${id} and m.position = page.position + 1
         where page.n < ${count} and page.total + ${bytesOf} <= ${maxBytes}
    )
    select ${summaryColumns(sql, 'c')},
           m.position, m.role, m.content, m.stage1_data as stage1, m.stage2_data as stage2, m.stage3_data as stage3, m.metadata,
           to_char(m.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as message_created_iso
      from conversations c
      left join (page join messages m on m.conversation_id = ${id} and m.position = page.position) on true
     where c.id = ${id} and c.user_id = ${userId}
     order by m.position`;
}

/** LIKE pattern for a literal substring: the default escape character is backslash. */
export const likePattern = (text: string): string => `%${text.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;

export interface PostgresConversationsOptions {
  db: SqlRunner;
  tierLimits: TierLimits;
  clock?: Clock;
  logger?: Logger;
}

export function createPostgresConversations(options: PostgresConversationsOptions): ConversationBackend {
  const { db, clock } = options;
  const limits = limitParams(options.tierLimits);
  const logger = options.logger ?? silentLogger;
  const label = (message: NewMessage) => `conversations.add${message.role === 'user' ? 'User' : 'Assistant'}Message`;

  return {
    async insert(userId, id, title) {
      const at = nowParam(clock);
      const rows = await query(
        db,
        'conversations.create',
        (sql) =>
          sql<SummaryRow[]>`
          insert into conversations (id, user_id, title, created_at, updated_at)
          values (${id}, ${userId}, ${title}, coalesce(${at}::timestamptz, now()), coalesce(${at}::timestamptz, now()))
          on conflict (id) do nothing
          returning ${summaryColumns(sql, 'conversations')}`,
      );
      return rows[0] && toSummary(rows[0]);
    },

    async read(userId, id, from, count, maxBytes) {
      // One round trip: the conversation left-joined to its page of
      // messages (pageQuery). The conversation's columns repeat on each row,
      // which is cheaper than a second query.
      const rows = await query(db, 'conversations.get', (sql) => pageQuery(sql, userId, id, from, count, maxBytes), {
        idempotent: true,
      });
      const first = rows[0];
      if (!first) return undefined;
      const messages: StoredMessage[] = [];
      for (const row of rows) {
        if (row.position === null || row.role === null) break;
        messages.push(toStoredMessage({ ...row, position: row.position, role: row.role }));
      }
      return { summary: toSummary(first), messages };
    },

    async listAfter(userId, after, count) {
      const rows = await query(db, 'conversations.list', (sql) => listQuery(sql, userId, after, count), { idempotent: true });
      return rows.map((row): ListedSummary => ({ ...toSummary(row), updatedKey: row.updated_key }));
    },

    async append(userId, id, message, bytes) {
      const at = nowParam(clock);
      const [row] = await query(db, label(message), (sql) => appendQuery(sql, userId, id, message, at, bytes));
      return appendOutcome(row);
    },

    async appendCounted(userId, id, message, n, bytes) {
      const at = nowParam(clock);
      return untilDecided(logger, userId, async () => {
        const [row] = await query(db, 'conversations.sendUserMessage', (sql) => sendQuery(sql, userId, id, message, n, at, limits, bytes));
        if (!row?.found) return undefined; // nothing counted
        if (row.over_limit !== null) return { full: row.over_limit }; // nothing counted
        if (typeof row.allowed !== 'boolean') return RERUN; // a brand-new user's first usage row raced ours
        const usage = { ...usageStateOf(row as ConsumeRow), allowed: row.allowed };
        return { usage, appended: typeof row.position === 'number' ? toAppended(row as AppendRow) : null };
      });
    },

    async setTitle(userId, id, title) {
      const at = nowParam(clock);
      const rows = await query(
        db,
        'conversations.updateTitle',
        (sql) => sql<SummaryRow[]>`
          update conversations
             set title = ${title}, updated_at = coalesce(${at}::timestamptz, now())
           where id = ${id} and user_id = ${userId}
          returning ${summaryColumns(sql, 'conversations')}`,
        { idempotent: true },
      );
      return rows[0] && toSummary(rows[0]);
    },

    async remove(userId, id) {
      // Messages go with it: messages.conversation_id is `on delete cascade`.
      const rows = await query(
        db,
        'conversations.delete',
        (sql) => sql`delete from conversations where id = ${id} and user_id = ${userId} returning id`,
      );
      return rows.length > 0;
    },

    async search(userId, text, limit) {
      // The case folding of domain/search-fold.ts, independent of the database's locale (ILIKE would follow it).
      const folded = foldCase(text);
      const pattern = likePattern(folded);
      const { from, to } = foldTranslation(folded);
      const rows = await query(
        db,
        'conversations.search',
        (sql) => sql<SummaryRow[]>`
          select ${summaryColumns(sql, 'c')}
            from conversations c
           where c.user_id = ${userId}
             and (translate(c.title, ${from}, ${to}) like ${pattern}
                  or exists (select 1 from messages m
                              where m.conversation_id = c.id and m.role = 'user'
                                and translate(m.content, ${from}, ${to}) like ${pattern}))
           order by c.updated_at desc, c.id desc
           limit ${limit}`,
        { idempotent: true },
      );
      return rows.map(toSummary);
    },
  };
}
