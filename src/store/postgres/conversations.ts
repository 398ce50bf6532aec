import type postgres from 'postgres';
import type { TierLimits } from '../../config.ts';
import type { Sql } from '../../db/database.ts';
import type { ConversationSummary } from '../../domain/conversations.ts';
import { fromJsonb, toJsonb } from '../../domain/json-values.ts';
import { type Logger, silentLogger } from '../../log.ts';
import type { Appended, ConversationBackend, ListedSummary, NewMessage, StoredMessage } from '../core/backend.ts';
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

interface SendRow extends Partial<ConsumeRow>, Partial<AppendRow> {
  found: boolean;
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
export function sendQuery(sql: Sql, userId: string, id: string, message: NewMessage, n: number, at: Date | null, limits: LimitParams) {
  return sql<SendRow[]>`
    with target as materialized (
      select id from conversations where id = ${id} and user_id = ${userId} for update
    ),
    ${consumeCtes(sql, userId, n, at, limits, sql`exists (select 1 from target)`)},
    ${bumpCte(sql, userId, id, at, sql`exists (select 1 from decision where allowed)`)},
    appended as (${insertBumped(sql, message)})
    select exists (select 1 from target) as found, decision.*, appended.*
      from (select 1) one
      left join decision on true
      left join appended on true`;
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

    async read(userId, id, from, count) {
      // One round trip: the conversation left-joined to `count` of its
      // messages. The conversation's columns repeat on each row, which is
      // cheaper than a second query.
      const rows = await query(
        db,
        'conversations.get',
        (sql) => sql<GetRow[]>`
          select ${summaryColumns(sql, 'c')},
                 m.position, m.role, m.content, m.stage1_data as stage1, m.stage2_data as stage2, m.stage3_data as stage3, m.metadata,
                 to_char(m.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as message_created_iso
            from conversations c
            left join lateral (
                  select position, role, content, stage1_data, stage2_data, stage3_data, metadata, created_at
                    from messages
                   where conversation_id = c.id and position >= ${from}
                   order by position
                   limit ${count}
                 ) m on true
           where c.id = ${id} and c.user_id = ${userId}
           order by m.position`,
        { idempotent: true },
      );
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

    async append(userId, id, message) {
      const at = nowParam(clock);
      const rows = await query(
        db,
        label(message),
        (sql) => sql<AppendRow[]>`with ${bumpCte(sql, userId, id, at, sql`true`)} ${insertBumped(sql, message)}`,
      );
      return rows[0] && toAppended(rows[0]);
    },

    async appendCounted(userId, id, message, n) {
      const at = nowParam(clock);
      return untilDecided(logger, userId, async () => {
        const [row] = await query(db, 'conversations.sendUserMessage', (sql) => sendQuery(sql, userId, id, message, n, at, limits));
        if (!row?.found) return undefined; // nothing counted
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
      const pattern = likePattern(text);
      const rows = await query(
        db,
        'conversations.search',
        (sql) => sql<SummaryRow[]>`
          select ${summaryColumns(sql, 'c')}
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
    },
  };
}
