import type { TierLimits } from '../config.ts';
import { type Database, isConnectionError, tableExists } from '../db/database.ts';
import { PgFerryError } from '../errors.ts';
import { type Logger, silentLogger } from '../log.ts';
import { TaskLimiter } from './concurrency.ts';
import { selectKinds, summaryOrder } from './kinds/index.ts';
import type { FormsSettings, KindDescriptor, KindRecord } from './kinds/types.ts';
import type { TransferLimits } from './limits.ts';
import { BatchBuffer, type BatchResult, BufferPool, Loader, type LoadMethod, type Rejection } from './load.ts';
import type { ProgressState } from './progress.ts';
import { readRecords, sourceKeys } from './records.ts';
import type { ProblemReport } from './report.ts';
import { type SourceScan, scanSource } from './source.ts';

/**
 * `pgferry import`: scan → read (bounded concurrency) → validate and hash →
 * load in batches (up to `jobs` transactions at once) → report records whose
 * source is gone (and prune them when asked). Every step that depends on what
 * a record is goes through its kind's descriptor (kinds/).
 *
 * Memory stays bounded: at most `jobs` batches in flight plus the one being
 * filled and the read-ahead window; the whole corpus is never held. What does
 * grow with the corpus is the file list, kept off the JS heap (~100 bytes a file).
 *
 * Interrupting (the `signal`) stops reading; batches already sent finish and
 * commit, and the summary says so. Killing the process loses at most the
 * uncommitted batches, which the next run loads.
 */

export interface ImportOptions {
  /** The source root, already resolved (resolveSourceRoot). */
  root: string;
  db: Database;
  /** Kind names (registry order is kept); default: every registered kind. */
  kinds?: readonly string[];
  defaultUser?: string;
  /** The forms app's options (--source-timezone, --module, --inline-warn-size). */
  forms?: FormsSettings;
  dryRun?: boolean;
  /** Records per batch (default 500). */
  batchSize?: number;
  /** Source bytes per batch, whichever limit comes first (default 8 MB). */
  batchBytes?: number;
  /** Batches loading at once, each on its own connection (default 2). */
  jobs?: number;
  readConcurrency?: number;
  /**
   * Reader threads for parsing and hashing (default 0: this thread). Import is
   * bound by the server's COPY work, so on a small machine an extra thread
   * buys little and costs memory; verify defaults to using spare cores.
   */
  readers?: number;
  prune?: boolean;
  /**
   * The root holds only some of the records (`pgferry sync` stages the files
   * that changed): records missing from it are not "gone", so the search for
   * vanished records (a pass over import_log) is skipped.
   */
  partial?: boolean;
  /** Largest file and deepest nesting read (--max-file-size, --max-depth; default DEFAULT_LIMITS). */
  limits?: TransferLimits;
  tierLimits: TierLimits;
  method?: LoadMethod;
  logger?: Logger;
  report?: ProblemReport;
  onStart?: (totals: { records: number; bytes: number }) => void;
  onProgress?: (state: ProgressState) => void;
  signal?: AbortSignal;
}

export interface KindSummary {
  /** Source records seen (files, including rejected ones and unreadable entries). */
  read: number;
  inserted: number;
  updated: number;
  unchanged: number;
  rejected: number;
  warnings: number;
  /** Imported earlier, source now gone. */
  vanished: number;
  pruned: number;
}

export interface ImportSummary {
  /** Per kind name, in registry order. */
  kinds: Record<string, KindSummary>;
  /** Child rows written (the chat app's messages). */
  messages: number;
  bytes: number;
  elapsedMs: number;
  interrupted: boolean;
  dryRun: boolean;
  method: LoadMethod;
  ignoredFiles: number;
}

const emptyKind = (): KindSummary => ({ read: 0, inserted: 0, updated: 0, unchanged: 0, rejected: 0, warnings: 0, vanished: 0, pruned: 0 });

interface Batch {
  kind: KindDescriptor;
  records: KindRecord[];
  rejections: Rejection[];
  bytes: number;
  /** Where this batch's COPY payloads live (pooled chunks, given back when the batch is done). */
  buffer: BatchBuffer;
}

export async function runImport(options: ImportOptions): Promise<ImportSummary> {
  const started = performance.now();
  const logger = options.logger ?? silentLogger;
  const kinds = selectKinds(options.kinds);
  const batchSize = options.batchSize ?? 500;
  const batchBytes = options.batchBytes ?? 4 * 1024 * 1024;
  const dryRun = options.dryRun ?? false;
  const report = options.report;

  const schemaPresent = await hasSchema(options.db);
  if (!schemaPresent && !dryRun) {
    throw new PgFerryError(
      'CONFIG_ERROR',
      'the database has no pgferry schema: run `pgferry db up` (import runs it itself unless --dry-run)',
    );
  }
  const loader = new Loader(options.db, {
    method: options.method,
    dryRun,
    schemaPresent,
    settings: { defaultUser: options.defaultUser, tierLimits: options.tierLimits },
  });
  // Cross-record checks (afterLoad) look only at records this run wrote: the database's clock, as import_log's.
  const runStarted = kinds.some((k) => k.afterLoad) && !dryRun ? await databaseNow(options.db) : undefined;
  const scan = await scanSource(options.root, kinds);
  const kindOf = new Map(kinds.map((k) => [k.name, k]));
  const summary: ImportSummary = {
    kinds: Object.fromEntries(summaryOrder(kinds, options.kinds).map((name) => [name, emptyKind()])),
    messages: 0,
    bytes: 0,
    elapsedMs: 0,
    interrupted: false,
    dryRun,
    method: loader.method,
    ignoredFiles: scan.ignored,
  };
  const counts = (kind: string) => summary.kinds[kind]!;
  const totalRecords = scan.files.length + scan.problems.filter((p) => p.severity === 'error').length;
  options.onStart?.({ records: totalRecords, bytes: scan.totalBytes });
  const progress: ProgressState = { records: 0, totalRecords, bytes: 0, totalBytes: scan.totalBytes, messages: 0 };

  // Entries that are not readable records (symlinks leading out, unreadable directories).
  const scanRejections = new Map<string, Rejection[]>();
  for (const problem of scan.problems) {
    report?.add({
      kind: kindOf.get(problem.kind)!.logKind,
      file: problem.rel,
      record: problem.key,
      reason: problem.reason,
      severity: problem.severity,
    });
    if (problem.severity === 'warning') {
      counts(problem.kind).warnings++;
      continue;
    }
    counts(problem.kind).read++;
    counts(problem.kind).rejected++;
    progress.records++;
    const list = scanRejections.get(problem.kind) ?? [];
    list.push({ kind: problem.kind, key: null, file: problem.rel, reason: problem.reason });
    scanRejections.set(problem.kind, list);
  }
  for (const [kind, rejections] of scanRejections) await loader.rejectionsOnly(kindOf.get(kind)!, rejections);

  const limiter = new TaskLimiter(Math.max(1, options.jobs ?? 2));
  const apply = (kind: KindDescriptor, result: BatchResult) => {
    const c = counts(kind.name);
    c.inserted += result.inserted;
    c.updated += result.updated;
    c.unchanged += result.unchanged;
    summary.messages += result.messages;
  };

  const loadBatch = async (batch: Batch): Promise<void> => {
    try {
      apply(batch.kind, await loader.batch(batch.kind, batch.records, batch.rejections));
    } catch (error) {
      if (error instanceof PgFerryError || isConnectionError(error) || batch.records.length + batch.rejections.length <= 1) throw error;
      // The database refused the batch (a value it cannot take): load record by
      // record so only the offending ones are rejected, with the server's reason.
      logger.warn({ kind: batch.kind.name, records: batch.records.length, err: error }, 'batch refused; retrying record by record');
      const c = counts(batch.kind.name);
      for (const record of batch.records) {
        try {
          apply(batch.kind, await loader.batch(batch.kind, [record], []));
        } catch (recordError) {
          if (recordError instanceof PgFerryError || isConnectionError(recordError)) throw recordError;
          const reason = `the database refused the record: ${(recordError as Error).message}`;
          c.rejected++;
          report?.add({ kind: batch.kind.logKind, file: record.file, record: record.key, reason, severity: 'error' });
          await loader.rejectionsOnly(batch.kind, [{ kind: batch.kind.name, key: record.key, file: record.file, reason }]);
        }
      }
      await loader.rejectionsOnly(batch.kind, batch.rejections);
    }
    progress.records += batch.records.length + batch.rejections.length;
    progress.bytes += batch.bytes;
    progress.messages = summary.messages;
    options.onProgress?.({ ...progress });
    logger.debug({ kind: batch.kind.name, records: batch.records.length, rejected: batch.rejections.length }, 'batch committed');
  };

  const pool = new BufferPool();
  let batch: Batch | undefined;
  const flush = async () => {
    if (!batch) return;
    const full = batch;
    batch = undefined;
    if (full.records.length + full.rejections.length === 0) return full.buffer.release();
    await limiter.add(() => loadBatch(full).finally(() => full.buffer.release()));
  };

  await limiter.run(async () => {
    const records = readRecords(scan, {
      root: options.root,
      settings: { defaultUser: options.defaultUser, sourceRoot: options.root, forms: options.forms },
      readConcurrency: options.readConcurrency,
      encode: loader.method,
      workers: options.readers ?? 0,
      limits: options.limits,
    });
    for await (const record of records) {
      if (options.signal?.aborted) {
        summary.interrupted = true;
        break;
      }
      if (batch && batch.kind.name !== record.kind) await flush();
      batch ??= { kind: kindOf.get(record.kind)!, records: [], rejections: [], bytes: 0, buffer: new BatchBuffer(pool) };
      const c = counts(record.kind);
      const logKind = batch.kind.logKind;
      c.read++;
      summary.bytes += record.file.size;
      batch.bytes += record.file.size;
      const key = 'rejection' in record ? record.rejection.key : record.record.key;
      for (const warning of record.warnings) {
        c.warnings++;
        report?.add({ kind: logKind, file: record.file.rel, record: key, reason: warning, severity: 'warning' });
      }
      if ('rejection' in record) {
        c.rejected++;
        report?.add({
          kind: logKind,
          file: record.file.rel,
          record: key,
          reason: record.rejection.reason,
          severity: 'error',
        });
        batch.rejections.push(record.rejection);
      } else {
        // A small Buffer payload may be a view of a reader's scratch buffer: copied into the batch's pooled
        // chunks. A large one is the record's own (KindRecord.payload) and kept as it is.
        const loaded = record.record;
        const copy = Buffer.isBuffer(loaded.payload) && loaded.payload.length <= BufferPool.CHUNK;
        batch.records.push(copy ? { ...loaded, payload: batch.buffer.add(loaded.payload as Buffer) } : loaded);
      }
      if (batch.records.length + batch.rejections.length >= batchSize || batch.bytes >= batchBytes) await flush();
      if (limiter.failed) break;
    }
    if (options.signal?.aborted) summary.interrupted = true;
    if (!summary.interrupted) await flush();
  });

  if (!summary.interrupted && schemaPresent && !options.partial) {
    for (const kind of kinds) await vanished(options, loader, scan, kind, counts(kind.name), dryRun);
    if (runStarted) for (const kind of kinds) await crossChecks(options, kind, counts(kind.name), runStarted);
  }
  summary.elapsedMs = performance.now() - started;
  return summary;
}

/** A kind's checks across records after loading (kinds/types.ts afterLoad): warnings in the report. */
async function crossChecks(options: ImportOptions, kind: KindDescriptor, counts: KindSummary, since: Date): Promise<void> {
  if (!kind.afterLoad) return;
  for (const check of await kind.afterLoad(options.db, { root: options.root, since })) {
    counts.warnings++;
    options.report?.add({ kind: kind.logKind, file: check.file, record: check.key, reason: check.reason, severity: 'warning' });
  }
}

async function databaseNow(db: Database): Promise<Date> {
  const [row] = await db.run('import.now', (sql) => sql<{ now: Date }[]>`select clock_timestamp() as now`, { idempotent: true });
  return row!.now;
}

async function hasSchema(db: Database): Promise<boolean> {
  return db.run('import.schema', (sql) => tableExists(sql, 'import_log'), { idempotent: true });
}

/**
 * Records imported earlier whose source file is gone: reported, and with
 * --prune deleted (the kind's `load.prune`) and logged as pruned.
 */
async function vanished(
  options: ImportOptions,
  loader: Loader,
  scan: SourceScan,
  kind: KindDescriptor,
  counts: KindSummary,
  dryRun: boolean,
): Promise<void> {
  const present = sourceKeys(scan, kind);
  const gone: Array<{ key: string; source: string }> = [];
  await options.db.sql<{ record_key: string; source: string }[]>`
    select record_key, source from import_log
     where kind = ${kind.logKind} and content_hash is not null and status <> 'pruned'
     order by record_key`.cursor(1000, (rows) => {
    for (const row of rows) if (!present.has(row.record_key)) gone.push({ key: row.record_key, source: row.source });
  });
  counts.vanished = gone.length;
  const prune = options.prune === true && !dryRun;
  for (const item of gone) {
    options.report?.add({
      kind: kind.logKind,
      file: item.source,
      record: item.key,
      reason: prune
        ? 'source file gone: removed from the database (--prune)'
        : 'source file gone: still in the database (run with --prune to remove it)',
      severity: 'warning',
    });
  }
  if (!prune) return;
  for (let i = 0; i < gone.length; i += 1000) {
    const keys = gone.slice(i, i + 1000).map((g) => g.key);
    await loader.prune(kind, keys);
    counts.pruned += keys.length;
  }
}
