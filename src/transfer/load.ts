import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { TierLimits } from '../config.ts';
import type { Database, Sql, TransactionSql } from '../db/database.ts';
import type { PreparedConversation, PreparedUsage } from './canonical.ts';
import { BinaryCopyWriter } from './copy-binary.ts';
import { type ChatKind, LOG_KIND } from './sources/chat.ts';
import { formatTimestampUs } from './validate.ts';

/**
 * Batched loading of validated records, one transaction per batch: the data
 * rows and their import_log rows commit together, so a process killed at any
 * moment leaves either the whole batch or none of it, and a re-run picks up
 * exactly what is missing.
 *
 * Per batch:
 * 1. read import_log and the target table for the batch's keys;
 * 2. skip records whose content hash equals the logged one (and whose row is
 *    still there): a second run writes nothing;
 * 3. write the changed ones; a changed conversation's messages are replaced
 *    as a whole (position = index in the file);
 * 4. upsert import_log (hash, status, source; rejections with their reason).
 *
 * Three ways to write messages, compared by bench/import.ts (docs/migrating.md
 * has the figures):
 * - `copy` (default): conversations upserted from unnest() arrays, then the
 *   changed conversations' old messages deleted and the new ones COPYed
 *   (binary format, copy-binary.ts) straight into `messages`. Replacing a
 *   conversation's messages needs no merge, so a staging table would only
 *   copy every row twice.
 * - `staging`: COPY into temporary staging tables, then INSERT … SELECT …
 *   ON CONFLICT DO UPDATE into the real tables (the textbook shape).
 * - `json`: one json_to_recordset() parameter per batch instead of COPY.
 */

export const LOAD_METHODS = ['copy', 'staging', 'json'] as const;
export type LoadMethod = (typeof LOAD_METHODS)[number];

export interface Rejection {
  kind: ChatKind;
  /** Record key when known; otherwise import_log uses `file:<path>`. */
  key: string | null;
  file: string;
  reason: string;
  /** import_log.source when not `file` (the copies of a duplicated id all log the first one). */
  source?: string;
}

export interface BatchResult {
  inserted: number;
  updated: number;
  unchanged: number;
  /** Messages written (inserted or replaced). */
  messages: number;
}

export interface LoaderOptions {
  method?: LoadMethod;
  /** Decide and count, but write nothing. */
  dryRun?: boolean;
  /** False when the database has no pgferry schema yet (dry run on a fresh database): everything is new. */
  schemaPresent?: boolean;
  tierLimits: TierLimits;
}

interface Prior {
  hash: string | null;
  status: string | null;
  source: string | null;
  present: boolean;
}

type Decision = 'inserted' | 'updated' | 'unchanged';

interface LogRow {
  key: string;
  source: string;
  hash: string | null;
  status: string;
  error: string | null;
}

const MESSAGE_COLUMNS = 'conversation_id, position, role, content, stage1_data, stage2_data, stage3_data, metadata, created_at';

/**
 * A conversation ready to write: its head, and its messages already encoded
 * for the load method (binary COPY rows, or JSON objects for `json`). Encoding
 * at read time lets the parsed values and their JSON strings die young; a
 * batch in flight holds only these compact payloads, which keeps the import's
 * memory flat.
 *
 * A Buffer payload from encodeConversation is a view of a scratch buffer,
 * valid until the next conversation is encoded: whoever keeps it copies it
 * (into a batch's pooled chunks, see BatchBuffer).
 */
export interface ConversationLoad {
  key: string;
  file: string;
  hash: string;
  row: PreparedConversation['row'];
  messageCount: number;
  /** copy/staging: binary COPY rows; json: comma-separated JSON objects. */
  payload: Buffer | string;
}

/** Reused for every conversation (encoding is synchronous). */
const scratch = new BinaryCopyWriter({ chunkSize: 256 * 1024 });

export function encodeConversation(p: PreparedConversation, method: LoadMethod): ConversationLoad {
  const head = { key: p.key, file: p.file, hash: p.hash, row: p.row, messageCount: p.messages.length };
  if (method === 'json') {
    const id = JSON.stringify(p.key);
    const parts = p.messages.map(
      (m, i) =>
        `{"conversation_id":${id},"position":${i},"role":"${m.role}","content":${JSON.stringify(m.content)},` +
        `"stage1_data":${m.json.stage1 ?? 'null'},"stage2_data":${m.json.stage2 ?? 'null'},"stage3_data":${m.json.stage3 ?? 'null'},` +
        `"metadata":${m.json.metadata ?? 'null'},"created_at":"${formatTimestampUs(m.createdUs)}"}`,
    );
    return { ...head, payload: parts.join(',') };
  }
  const w = scratch;
  w.reset();
  for (let i = 0; i < p.messages.length; i++) {
    const m = p.messages[i]!;
    w.row(9);
    w.text(p.key);
    w.int4(i);
    w.text(m.role);
    w.text(m.content);
    w.jsonb(m.json.stage1);
    w.jsonb(m.json.stage2);
    w.jsonb(m.json.stage3);
    w.jsonb(m.json.metadata);
    w.timestamptz(m.createdUs);
  }
  const chunks = w.take();
  chunks.push(w.current());
  return { ...head, payload: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) };
}

/**
 * Fixed-size chunks reused from batch to batch. Encoded messages are copied
 * into a batch's chunks and the chunks go back to the pool when the batch is
 * done, so COPY payloads do not pile up as external memory waiting for a
 * full garbage collection (which a transfer's steady allocation rarely triggers).
 */
export class BufferPool {
  static readonly CHUNK = 1 << 20;
  private readonly free: Buffer[] = [];
  private readonly max: number;

  constructor(maxFree = 32) {
    this.max = maxFree;
  }

  take(atLeast: number): Buffer {
    if (atLeast <= BufferPool.CHUNK) return this.free.pop() ?? Buffer.allocUnsafeSlow(BufferPool.CHUNK);
    return Buffer.allocUnsafeSlow(atLeast); // one oversized conversation: not pooled
  }

  give(buffer: Buffer): void {
    if (buffer.length === BufferPool.CHUNK && this.free.length < this.max) this.free.push(buffer);
  }
}

/** A batch's share of the pool: payloads copied in back to back; views handed out. */
export class BatchBuffer {
  private readonly chunks: Buffer[] = [];
  private current: Buffer | undefined;
  private offset = 0;
  private readonly pool: BufferPool;

  constructor(pool: BufferPool) {
    this.pool = pool;
  }

  /** Copy `bytes` in and return the view of the copy. */
  add(bytes: Buffer): Buffer {
    if (this.current === undefined || this.offset + bytes.length > this.current.length) {
      this.current = this.pool.take(bytes.length);
      this.chunks.push(this.current);
      this.offset = 0;
    }
    bytes.copy(this.current, this.offset);
    const view = this.current.subarray(this.offset, this.offset + bytes.length);
    this.offset += bytes.length;
    return view;
  }

  /** Give the chunks back; views handed out must not be used any more. */
  release(): void {
    for (const chunk of this.chunks) this.pool.give(chunk);
    this.chunks.length = 0;
    this.current = undefined;
  }
}

/** The batch's messages as one binary COPY stream. */
function* messageCopyChunks(records: readonly ConversationLoad[]): Generator<Buffer> {
  yield BinaryCopyWriter.HEADER;
  for (const record of records) if (record.messageCount > 0) yield record.payload as Buffer;
  yield BinaryCopyWriter.TRAILER;
}

function* conversationCopyChunks(records: readonly ConversationLoad[]): Generator<Buffer> {
  const w = new BinaryCopyWriter({ header: true });
  for (const r of records) {
    w.row(6);
    w.text(r.key);
    w.text(r.row.userId);
    w.text(r.row.title);
    w.timestamptz(r.row.createdUs);
    w.timestamptz(r.row.updatedUs);
    w.int4(r.messageCount);
    yield* w.take();
  }
  yield* w.end();
  yield BinaryCopyWriter.TRAILER;
}

export class ChatLoader {
  readonly method: LoadMethod;
  private readonly dryRun: boolean;
  private readonly schemaPresent: boolean;
  private readonly db: Database;
  private readonly options: LoaderOptions;

  constructor(db: Database, options: LoaderOptions) {
    this.db = db;
    this.options = options;
    this.method = options.method ?? 'copy';
    this.dryRun = options.dryRun ?? false;
    this.schemaPresent = options.schemaPresent ?? true;
  }

  /** Load one batch of conversations (and log its rejections). */
  async conversations(records: readonly ConversationLoad[], rejections: readonly Rejection[]): Promise<BatchResult> {
    if (this.dryRun) return this.decideOnly('conversations', records);
    return this.db.transaction('import.conversations', async (tx) => {
      const prior = await this.prior(
        tx,
        'conversations',
        records.map((r) => r.key),
      );
      const { decisions, result } = decide(records, prior);
      const changed = records.filter((_, i) => decisions[i] !== 'unchanged');
      const replaced = changed.filter((r) => prior.get(r.key)?.present).map((r) => r.key);
      if (changed.length > 0) {
        if (this.method === 'staging') await this.writeConversationsStaging(tx, changed, replaced);
        else await this.writeConversationsDirect(tx, changed, replaced);
        for (const r of changed) result.messages += r.messageCount;
      }
      await this.writeLog(tx, 'conversations', logRows(records, decisions, prior, rejections));
      return result;
    });
  }

  async usage(records: readonly PreparedUsage[], rejections: readonly Rejection[]): Promise<BatchResult> {
    if (this.dryRun) return this.decideOnly('usage', records);
    return this.db.transaction('import.usage', async (tx) => {
      const prior = await this.prior(
        tx,
        'usage',
        records.map((r) => r.key),
      );
      const { decisions, result } = decide(records, prior);
      const changed = records.filter((_, i) => decisions[i] !== 'unchanged');
      if (changed.length > 0) {
        const limits = this.options.tierLimits;
        const col = <T>(pick: (r: PreparedUsage) => T) => changed.map(pick);
        await tx`
          insert into usage (user_id, tier, daily_used, daily_limit, monthly_used, monthly_limit, total_queries, last_reset_daily, last_reset_monthly)
          select user_id, tier, daily_used, daily_limit, monthly_used, monthly_limit, total_queries, d::date, m::date from unnest(
            ${col((r) => r.key)}::text[], ${col((r) => r.row.tier)}::text[],
            ${col((r) => r.row.dailyUsed)}::int[], ${col((r) => limits[r.row.tier].daily)}::int[],
            ${col((r) => r.row.monthlyUsed)}::int[], ${col((r) => limits[r.row.tier].monthly)}::int[],
            ${col((r) => r.row.totalQueries)}::int8[],
            ${col((r) => r.row.lastResetDaily)}::text[], ${col((r) => r.row.lastResetMonthly)}::text[])
            as t(user_id, tier, daily_used, daily_limit, monthly_used, monthly_limit, total_queries, d, m)
          on conflict (user_id) do update set
            tier = excluded.tier, daily_used = excluded.daily_used, daily_limit = excluded.daily_limit,
            monthly_used = excluded.monthly_used, monthly_limit = excluded.monthly_limit, total_queries = excluded.total_queries,
            last_reset_daily = excluded.last_reset_daily, last_reset_monthly = excluded.last_reset_monthly, updated_at = now()`;
      }
      await this.writeLog(tx, 'usage', logRows(records, decisions, prior, rejections));
      return result;
    });
  }

  /** Rejections of records with no batch of their own (e.g. a kind whose every file failed). */
  async rejectionsOnly(kind: ChatKind, rejections: readonly Rejection[]): Promise<void> {
    if (this.dryRun || rejections.length === 0) return;
    await this.db.transaction('import.rejections', (tx) => this.writeLog(tx, kind, logRows([], [], new Map(), rejections)));
  }

  private async decideOnly(kind: ChatKind, records: readonly { key: string; hash: string }[]): Promise<BatchResult> {
    const keys = records.map((r) => r.key);
    const prior = this.schemaPresent
      ? await this.db.run(`import.${kind}.prior`, (sql) => this.prior(sql, kind, keys), { idempotent: true })
      : new Map<string, Prior>();
    const { decisions, result } = decide(records, prior);
    if (kind === 'conversations') {
      (records as readonly ConversationLoad[]).forEach((r, i) => {
        if (decisions[i] !== 'unchanged') result.messages += r.messageCount;
      });
    }
    return result;
  }

  private async prior(sql: TransactionSql | Sql, kind: ChatKind, keys: string[]): Promise<Map<string, Prior>> {
    if (keys.length === 0) return new Map();
    const rows =
      kind === 'conversations'
        ? await sql<{ key: string; content_hash: string | null; status: string | null; source: string | null; present: boolean }[]>`
            select k.key, l.content_hash, l.status, l.source, (t.id is not null) as present
              from unnest(${keys}::text[]) as k(key)
              left join import_log l on l.kind = ${LOG_KIND[kind]} and l.record_key = k.key
              left join conversations t on t.id = k.key`
        : await sql<{ key: string; content_hash: string | null; status: string | null; source: string | null; present: boolean }[]>`
            select k.key, l.content_hash, l.status, l.source, (t.user_id is not null) as present
              from unnest(${keys}::text[]) as k(key)
              left join import_log l on l.kind = ${LOG_KIND[kind]} and l.record_key = k.key
              left join usage t on t.user_id = k.key`;
    return new Map(rows.map((r) => [r.key, { hash: r.content_hash, status: r.status, source: r.source, present: r.present }]));
  }

  private async upsertConversationsFromArrays(tx: TransactionSql, changed: readonly ConversationLoad[]): Promise<void> {
    const col = <T>(pick: (r: ConversationLoad) => T) => changed.map(pick);
    await tx`
      insert into conversations (id, user_id, title, created_at, updated_at, message_count)
      select id, user_id, title, created::timestamptz, updated::timestamptz, message_count from unnest(
        ${col((r) => r.key)}::text[], ${col((r) => r.row.userId)}::text[], ${col((r) => r.row.title)}::text[],
        ${col((r) => formatTimestampUs(r.row.createdUs))}::text[], ${col((r) => formatTimestampUs(r.row.updatedUs))}::text[],
        ${col((r) => r.messageCount)}::int[]) as t(id, user_id, title, created, updated, message_count)
      on conflict (id) do update set
        user_id = excluded.user_id, title = excluded.title, created_at = excluded.created_at,
        updated_at = excluded.updated_at, message_count = excluded.message_count`;
  }

  private async writeConversationsDirect(tx: TransactionSql, changed: readonly ConversationLoad[], replaced: string[]): Promise<void> {
    // Old messages go first: the schema's delete trigger recounts message_count, which the upsert then sets.
    if (replaced.length > 0) await tx`delete from messages where conversation_id = any(${replaced}::text[])`;
    await this.upsertConversationsFromArrays(tx, changed);
    if (this.method === 'json') {
      await tx`
        insert into messages (${tx.unsafe(MESSAGE_COLUMNS)})
        select ${tx.unsafe(MESSAGE_COLUMNS)} from json_to_recordset(${`[${changed
          .filter((r) => r.messageCount > 0)
          .map((r) => r.payload as string)
          .join(',')}]`}::text::json) as x(
          conversation_id text, position int, role text, content text,
          stage1_data jsonb, stage2_data jsonb, stage3_data jsonb, metadata jsonb, created_at timestamptz)`;
      return;
    }
    const writable = await tx.unsafe(`copy messages (${MESSAGE_COLUMNS}) from stdin with (format binary)`).writable();
    await pipeline(Readable.from(messageCopyChunks(changed), { objectMode: false }), writable);
  }

  private async writeConversationsStaging(tx: TransactionSql, changed: readonly ConversationLoad[], replaced: string[]): Promise<void> {
    await tx`
      create temporary table pgferry_stage_conversations (
        id text, user_id text, title text, created_at timestamptz, updated_at timestamptz, message_count int
      ) on commit drop`;
    await tx`
      create temporary table pgferry_stage_messages (
        conversation_id text, position int, role text, content text,
        stage1_data jsonb, stage2_data jsonb, stage3_data jsonb, metadata jsonb, created_at timestamptz
      ) on commit drop`;
    await pipeline(
      Readable.from(conversationCopyChunks(changed), { objectMode: false }),
      await tx`copy pgferry_stage_conversations from stdin with (format binary)`.writable(),
    );
    await pipeline(
      Readable.from(messageCopyChunks(changed), { objectMode: false }),
      await tx.unsafe(`copy pgferry_stage_messages (${MESSAGE_COLUMNS}) from stdin with (format binary)`).writable(),
    );
    await tx`
      insert into conversations (id, user_id, title, created_at, updated_at, message_count)
      select id, user_id, title, created_at, updated_at, message_count from pgferry_stage_conversations
      on conflict (id) do update set
        user_id = excluded.user_id, title = excluded.title, created_at = excluded.created_at,
        updated_at = excluded.updated_at, message_count = excluded.message_count`;
    await tx`
      insert into messages (${tx.unsafe(MESSAGE_COLUMNS)})
      select ${tx.unsafe(MESSAGE_COLUMNS)} from pgferry_stage_messages
      on conflict (conversation_id, position) do update set
        role = excluded.role, content = excluded.content, stage1_data = excluded.stage1_data, stage2_data = excluded.stage2_data,
        stage3_data = excluded.stage3_data, metadata = excluded.metadata, created_at = excluded.created_at`;
    // A conversation that got shorter loses its trailing messages (only those that existed can have any;
    // the join goes through the (conversation_id, position) index, never a scan of all messages).
    if (replaced.length === 0) return;
    const existed = new Set(replaced);
    const counts = changed.filter((r) => existed.has(r.key)).map((r) => r.messageCount);
    await tx`
      delete from messages m using unnest(${replaced}::text[], ${counts}::int[]) as s(id, message_count)
       where m.conversation_id = s.id and m.position >= s.message_count`;
  }

  private async writeLog(tx: TransactionSql, kind: ChatKind, rows: LogRow[]): Promise<void> {
    if (rows.length === 0) return;
    const col = <T>(pick: (r: LogRow) => T) => rows.map(pick);
    // A rejection keeps the hash of what is loaded (the last good version);
    // rows identical to what is logged are not rewritten, so a re-run writes nothing.
    await tx`
      insert into import_log (kind, record_key, source, content_hash, status, error)
      select ${LOG_KIND[kind]}, * from unnest(
        ${col((r) => r.key)}::text[], ${col((r) => r.source)}::text[], ${col((r) => r.hash)}::text[],
        ${col((r) => r.status)}::text[], ${col((r) => r.error)}::text[])
      on conflict (kind, record_key) do update set
        source = excluded.source,
        content_hash = case when excluded.status = 'rejected' then import_log.content_hash else excluded.content_hash end,
        status = excluded.status,
        error = excluded.error,
        imported_at = now()
      where import_log.status is distinct from excluded.status
         or import_log.error is distinct from excluded.error
         or import_log.source is distinct from excluded.source
         or (excluded.status <> 'rejected' and import_log.content_hash is distinct from excluded.content_hash)`;
  }
}

function decide(
  records: readonly { key: string; hash: string }[],
  prior: Map<string, Prior>,
): { decisions: Decision[]; result: BatchResult } {
  const result: BatchResult = { inserted: 0, updated: 0, unchanged: 0, messages: 0 };
  const decisions = records.map((r): Decision => {
    const p = prior.get(r.key);
    const decision: Decision = p?.present ? (p.hash === r.hash ? 'unchanged' : 'updated') : 'inserted';
    result[decision]++;
    return decision;
  });
  return { decisions, result };
}

/** import_log rows of a batch: changed records, unchanged ones whose log row is stale, and rejections (one row per key). */
function logRows(
  records: readonly { key: string; hash: string; file: string }[],
  decisions: readonly Decision[],
  prior: Map<string, Prior>,
  rejections: readonly Rejection[],
): LogRow[] {
  const rows = new Map<string, LogRow>();
  records.forEach((r, i) => {
    const decision = decisions[i]!;
    const p = prior.get(r.key);
    if (decision === 'unchanged' && p?.status !== 'rejected' && p?.status !== 'pruned' && p?.source === r.file) return;
    rows.set(r.key, { key: r.key, source: r.file, hash: r.hash, status: decision, error: null });
  });
  for (const rejection of rejections) {
    const key = rejection.key ?? `file:${rejection.file}`;
    // One row per key: the copies of a duplicated id share it (and their reason names them all).
    if (rows.has(key)) continue;
    rows.set(key, { key, source: rejection.source ?? rejection.file, hash: null, status: 'rejected', error: rejection.reason });
  }
  return [...rows.values()];
}
