import os from 'node:os';
import type { Database } from '../db/database.ts';
import { type Logger, silentLogger } from '../log.ts';
import { TaskLimiter } from './concurrency.ts';
import { selectKinds, summaryOrder } from './kinds/index.ts';
import type { FormsSettings, KindDescriptor, KindRecord, VerifyContext, VerifyItem } from './kinds/types.ts';
import type { TransferLimits } from './limits.ts';
import { childRows } from './load.ts';
import type { ProgressState } from './progress.ts';
import { readRecords, sourceKeys } from './records.ts';
import type { ProblemReport } from './report.ts';
import { scanSource } from './source.ts';

/**
 * `pgferry verify`: proves the database holds exactly what the files hold.
 * Every source record is read and hashed again, and compared with a hash
 * computed from the database rows themselves (never from import_log, which
 * would only prove that import ran) — the comparison is the kind's
 * (`verify.compare`). Records are compared in batches of keys, up to `jobs`
 * batches at once; afterwards the database's keys are streamed to find
 * records the files do not have.
 *
 * missing   — in the files, not in the database
 * different — in both, content differs (the first difference is named)
 * extra     — in the database, no source file for it
 * unreadable — a source file that cannot be read, parsed or validated: its
 *              record cannot be proven, so it counts against the result too
 */

export interface VerifyOptions {
  root: string;
  db: Database;
  /** Kind names (registry order is kept); default: every registered kind. */
  kinds?: readonly string[];
  defaultUser?: string;
  /** The forms app's options, as given to import. */
  forms?: FormsSettings;
  batchSize?: number;
  /** Source bytes per batch, whichever limit comes first (default 4 MB). */
  batchBytes?: number;
  jobs?: number;
  readConcurrency?: number;
  /** Reader threads (default: spare cores, at most 4; 0 = this thread). */
  readers?: number;
  /** Largest file and deepest nesting read, as for import (default DEFAULT_LIMITS). */
  limits?: TransferLimits;
  logger?: Logger;
  report?: ProblemReport;
  onStart?: (totals: { records: number; bytes: number }) => void;
  onProgress?: (state: ProgressState) => void;
}

export interface VerifyKindSummary {
  source: number;
  matched: number;
  missing: number;
  different: number;
  extra: number;
  unreadable: number;
}

export interface VerifySummary {
  /** Per kind name, in registry order. */
  kinds: Record<string, VerifyKindSummary>;
  /** Child rows compared (source side): the chat app's messages. */
  messages: number;
  bytes: number;
  elapsedMs: number;
  ok: boolean;
}

/**
 * Reader threads for verify: one per core (at most 4). Unlike import's, this
 * thread has next to nothing to do — the server hashes the database side —
 * so the readers, which parse and hash the files, may have every core.
 */
function verifyReaders(): number {
  return Math.min(4, os.availableParallelism());
}

export async function runVerify(options: VerifyOptions): Promise<VerifySummary> {
  const started = performance.now();
  const kinds = selectKinds(options.kinds);
  const kindOf = new Map(kinds.map((k) => [k.name, k]));
  const batchSize = options.batchSize ?? 500;
  const batchBytes = options.batchBytes ?? 4 * 1024 * 1024;
  const logger = options.logger ?? silentLogger;
  const report = options.report;
  const db = options.db;
  const scan = await scanSource(options.root, kinds);
  const summary: VerifySummary = {
    kinds: Object.fromEntries(
      summaryOrder(kinds, options.kinds).map((name) => [
        name,
        { source: 0, matched: 0, missing: 0, different: 0, extra: 0, unreadable: 0 },
      ]),
    ),
    messages: 0,
    bytes: 0,
    elapsedMs: 0,
    ok: false,
  };
  const counts = (kind: string) => summary.kinds[kind]!;
  const problem = (kind: string, problemName: string, record: string | null, file: string | null, reason: string) =>
    report?.add({ kind: kindOf.get(kind)!.logKind, file, record, reason, severity: 'error', problem: problemName });

  const totalRecords = scan.files.length;
  options.onStart?.({ records: totalRecords, bytes: scan.totalBytes });
  const progress: ProgressState = { records: 0, totalRecords, bytes: 0, totalBytes: scan.totalBytes, messages: 0 };

  for (const p of scan.problems) {
    if (p.severity !== 'error') continue;
    counts(p.kind).source++;
    counts(p.kind).unreadable++;
    problem(p.kind, 'unreadable', p.key, p.rel, p.reason);
  }

  const limiter = new TaskLimiter(Math.max(1, options.jobs ?? 2));
  const compare = async (kind: KindDescriptor, items: VerifyItem<KindRecord>[], bytes: number) => {
    const c = counts(kind.name);
    const context: VerifyContext = {
      db,
      root: options.root,
      settings: { defaultUser: options.defaultUser, sourceRoot: options.root, forms: options.forms },
      matched: () => {
        c.matched++;
      },
      missing: (item) => {
        c.missing++;
        problem(kind.name, 'missing', item.record.key, item.record.file, 'in the source but not in the database');
      },
      different: (item, reason) => {
        c.different++;
        problem(kind.name, 'different', item.record.key, item.record.file, reason);
      },
    };
    await kind.verify.compare(items, context);
    progress.records += items.length;
    progress.bytes += bytes;
    progress.messages = summary.messages;
    options.onProgress?.({ ...progress });
  };

  let batch: { kind: KindDescriptor; items: VerifyItem<KindRecord>[]; bytes: number } | undefined;
  const flush = async () => {
    if (!batch || batch.items.length === 0) return;
    const { kind, items, bytes } = batch;
    batch = undefined;
    await limiter.add(() => compare(kind, items, bytes));
  };
  await limiter.run(async () => {
    const records = readRecords(scan, {
      root: options.root,
      settings: { defaultUser: options.defaultUser, sourceRoot: options.root, forms: options.forms },
      readConcurrency: options.readConcurrency,
      encode: null,
      workers: options.readers ?? verifyReaders(),
      limits: options.limits,
    });
    for await (const record of records) {
      const c = counts(record.kind);
      c.source++;
      summary.bytes += record.file.size;
      if ('rejection' in record) {
        c.unreadable++;
        problem(record.kind, 'unreadable', record.rejection.key, record.file.rel, record.rejection.reason);
        progress.records++;
        continue;
      }
      if (batch && batch.kind.name !== record.kind) await flush();
      batch ??= { kind: kindOf.get(record.kind)!, items: [], bytes: 0 };
      summary.messages += childRows(batch.kind, [record.record]);
      batch.items.push({ record: record.record, source: record.file });
      batch.bytes += record.file.size;
      if (batch.items.length >= batchSize || batch.bytes >= batchBytes) await flush();
      if (limiter.failed) break;
    }
    await flush();
  });

  for (const kind of kinds) {
    const present = sourceKeys(scan, kind);
    const c = counts(kind.name);
    await kind.verify.databaseKeys(db.sql).cursor(5000, (rows) => {
      for (const row of rows) {
        if (present.has(row.key)) continue;
        c.extra++;
        problem(kind.name, 'extra', row.key, null, 'in the database but no source file has it');
      }
    });
    logger.debug({ kind: kind.name, ...c }, 'verify: kind done');
  }

  summary.ok = Object.values(summary.kinds).every((c) => c.missing + c.different + c.extra + c.unreadable === 0);
  summary.elapsedMs = performance.now() - started;
  return summary;
}
