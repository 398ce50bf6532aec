import type { Database, Sql, TransactionSql } from '../db/database.ts';
import type { KindDescriptor, KindRecord, LoadSettings } from './kinds/types.ts';

/**
 * Batched loading of validated records, one transaction per batch: the data
 * rows and their import_log rows commit together, so a process killed at any
 * moment leaves either the whole batch or none of it, and a re-run picks up
 * exactly what is missing.
 *
 * Per batch:
 * 1. read import_log and the kind's table for the batch's keys;
 * 2. skip records whose content hash equals the logged one (and whose row is
 *    still there): a second run writes nothing;
 * 3. write the changed ones (the kind's `load.write`; e.g. a changed
 *    conversation's messages are replaced as a whole);
 * 4. upsert import_log (hash, status, source; rejections with their reason).
 *
 * How rows are written is the kind's (kinds/<name>/); the load method says
 * which way for kinds that have more than one (bench/import.ts compares them).
 */

export const LOAD_METHODS = ['copy', 'staging', 'json'] as const;
export type LoadMethod = (typeof LOAD_METHODS)[number];

export interface Rejection {
  /** The kind's name. */
  kind: string;
  /** Record key when known; otherwise import_log uses `file:<path>`. */
  key: string | null;
  file: string;
  reason: string;
  /** import_log.source when not `file` (the copies of a duplicated key all log the first one). */
  source?: string;
}

export interface BatchResult {
  inserted: number;
  updated: number;
  unchanged: number;
  /** Child rows written (inserted or replaced): a conversation's messages. */
  messages: number;
}

export interface LoaderOptions {
  method?: LoadMethod;
  /** Decide and count, but write nothing. */
  dryRun?: boolean;
  /** False when the database has no pgferry schema yet (dry run on a fresh database): everything is new. */
  schemaPresent?: boolean;
  settings: LoadSettings;
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
  /** The version written (apply only if newer); null keeps the stored one. */
  version: number | null;
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

export class Loader {
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

  /** Load one batch of a kind's records (and log its rejections), in one transaction. */
  async batch(kind: KindDescriptor, batch: readonly KindRecord[], rejections: readonly Rejection[]): Promise<BatchResult> {
    let records = batch;
    if (this.dryRun) return this.decideOnly(kind, records);
    return this.db.transaction(`import.${kind.name}`, async (tx) => {
      // First claim the records' versions: a record someone wrote from a newer read is left as it is.
      const older = await claimVersions(tx, kind, records);
      const current = older.size === 0 ? records : records.filter((r) => !older.has(r.key));
      const prior = await this.prior(
        tx,
        kind,
        current.map((r) => r.key),
      );
      const { decisions, result } = decide(current, prior);
      result.unchanged += records.length - current.length;
      records = current;
      const changed = records.filter((_, i) => decisions[i] !== 'unchanged');
      if (changed.length > 0) {
        const replaced = changed.filter((r) => prior.get(r.key)?.present).map((r) => r.key);
        await kind.load.write(tx, changed, { method: this.method, replaced, settings: this.options.settings });
        result.messages += childRows(kind, changed);
      }
      await this.writeLog(tx, kind, logRows(records, decisions, prior, rejections));
      return result;
    });
  }

  /** Rejections of records with no batch of their own (e.g. a kind whose every file failed). */
  async rejectionsOnly(kind: KindDescriptor, rejections: readonly Rejection[]): Promise<void> {
    if (this.dryRun || rejections.length === 0) return;
    await this.db.transaction('import.rejections', (tx) => this.writeLog(tx, kind, logRows([], [], new Map(), rejections)));
  }

  /** Delete records whose source is gone (--prune) and log them as pruned, in one transaction. */
  async prune(kind: KindDescriptor, keys: readonly string[]): Promise<void> {
    await this.db.transaction('import.prune', async (tx) => {
      await kind.load.prune(tx, keys);
      await tx`
        update import_log set status = 'pruned', content_hash = null, error = null, imported_at = now()
         where kind = ${kind.logKind} and record_key = any(${keys as string[]}::text[])`;
    });
  }

  private async decideOnly(kind: KindDescriptor, records: readonly KindRecord[]): Promise<BatchResult> {
    const keys = records.map((r) => r.key);
    const prior = this.schemaPresent
      ? await this.db.run(`import.${kind.name}.prior`, (sql) => this.prior(sql, kind, keys), { idempotent: true })
      : new Map<string, Prior>();
    const { decisions, result } = decide(records, prior);
    result.messages += childRows(
      kind,
      records.filter((_, i) => decisions[i] !== 'unchanged'),
    );
    return result;
  }

  private async prior(sql: TransactionSql | Sql, kind: KindDescriptor, keys: string[]): Promise<Map<string, Prior>> {
    if (keys.length === 0) return new Map();
    const rows = await sql<{ key: string; content_hash: string | null; status: string | null; source: string | null; present: boolean }[]>`
      select k.key, l.content_hash, l.status, l.source, (t.${sql(kind.load.keyColumn)} is not null) as present
        from unnest(${keys}::text[]) as k(key)
        left join import_log l on l.kind = ${kind.logKind} and l.record_key = k.key
        left join ${sql(kind.load.table)} t on t.${sql(kind.load.keyColumn)} = k.key`;
    return new Map(rows.map((r) => [r.key, { hash: r.content_hash, status: r.status, source: r.source, present: r.present }]));
  }

  private async writeLog(tx: TransactionSql, kind: KindDescriptor, rows: LogRow[]): Promise<void> {
    if (rows.length === 0) return;
    const col = <T>(pick: (r: LogRow) => T) => rows.map(pick);
    // A rejection keeps the hash of what is loaded (the last good version);
    // rows identical to what is logged are not rewritten, so a re-run writes nothing.
    await tx`
      insert into import_log (kind, record_key, source, content_hash, status, error, source_version)
      select ${kind.logKind}, * from unnest(
        ${col((r) => r.key)}::text[], ${col((r) => r.source)}::text[], ${col((r) => r.hash)}::text[],
        ${col((r) => r.status)}::text[], ${col((r) => r.error)}::text[], ${col((r) => r.version)}::int8[])
      on conflict (kind, record_key) do update set
        source = excluded.source,
        content_hash = case when excluded.status = 'rejected' then import_log.content_hash else excluded.content_hash end,
        status = excluded.status,
        error = excluded.error,
        source_version = coalesce(excluded.source_version, import_log.source_version),
        imported_at = now()
      where import_log.status is distinct from excluded.status
         or import_log.error is distinct from excluded.error
         or import_log.source is distinct from excluded.source
         or (excluded.status <> 'rejected' and import_log.content_hash is distinct from excluded.content_hash)
         or excluded.source_version > import_log.source_version`;
  }
}

/**
 * "Apply only if newer" (schema 0004, transfer/version.ts): lock the import_log
 * rows of the batch's versioned records (creating a placeholder for a new
 * record, which writeLog fills in), in key order, and compare each stored
 * version with the record's. The row locks last until the batch commits, so
 * concurrent writers of one record (import, sync, the dual-write mirror) run
 * one after the other, and each sees the version the previous one stored.
 * Returns the keys that lose: someone wrote them from a newer read. A written
 * record stores its version with its log row (writeLog); an unchanged one
 * keeps the stored version, so a re-run writes nothing at all.
 */
export async function claimVersions(tx: TransactionSql, kind: KindDescriptor, records: readonly KindRecord[]): Promise<Set<string>> {
  const versioned = records.filter((r) => r.version !== undefined).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  if (versioned.length === 0) return new Set();
  const keys = versioned.map((r) => r.key);
  await tx`
    insert into import_log (kind, record_key, source, status)
    select ${kind.logKind}, key, source, 'inserted'
      from unnest(${keys}::text[], ${versioned.map((r) => r.file)}::text[]) with ordinality as t(key, source, n)
     order by n
    on conflict (kind, record_key) do nothing`;
  const stored = await tx<{ key: string; version: number | null }[]>`
    select record_key as key, source_version as version from import_log
     where kind = ${kind.logKind} and record_key = any(${keys}::text[])
     order by record_key
       for update`;
  const storedVersion = new Map(stored.map((row) => [row.key, row.version]));
  return new Set(
    versioned
      .filter((r) => {
        const version = storedVersion.get(r.key);
        return version !== null && version !== undefined && version >= r.version!;
      })
      .map((r) => r.key),
  );
}

/** Child rows (a conversation's messages) of these records, for the summaries' "messages" figure. */
export function childRows(kind: KindDescriptor, records: readonly KindRecord[]): number {
  if (!kind.childRows) return 0;
  let n = 0;
  for (const record of records) n += kind.childRows(record);
  return n;
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
  records: readonly { key: string; hash: string; file: string; version?: number }[],
  decisions: readonly Decision[],
  prior: Map<string, Prior>,
  rejections: readonly Rejection[],
): LogRow[] {
  const rows = new Map<string, LogRow>();
  records.forEach((r, i) => {
    const decision = decisions[i]!;
    const p = prior.get(r.key);
    if (decision === 'unchanged' && p?.status !== 'rejected' && p?.status !== 'pruned' && p?.source === r.file) return;
    const version = decision === 'unchanged' ? null : (r.version ?? null);
    rows.set(r.key, { key: r.key, source: r.file, hash: r.hash, status: decision, error: null, version });
  });
  for (const rejection of rejections) {
    const key = rejection.key ?? `file:${rejection.file}`;
    // One row per key: the copies of a duplicated id share it (and their reason names them all).
    if (rows.has(key)) continue;
    rows.set(key, {
      key,
      source: rejection.source ?? rejection.file,
      hash: null,
      status: 'rejected',
      error: rejection.reason,
      version: null,
    });
  }
  return [...rows.values()];
}
