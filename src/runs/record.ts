import os from 'node:os';
import type { Database, Sql } from '../db/database.ts';
import { errorCode } from '../db/database.ts';
import { type Logger, redactSecrets, silentLogger } from '../log.ts';

/**
 * Run history (docs/admin.md): one `runs` row per import, verify, sync,
 * files move or archive, written by the command that runs. A command needs
 * three lines:
 *
 * @example
 *   const run = await startRun(db, { command: 'import', source: root, reportPath: flags.report });
 *   onProgress: (state) => run.progress(state.records, state.totalRecords),
 *   await run.finish({ exitCode, counts: summary.kinds, problems: report });   // or run.fail(error)
 *
 * Recording never breaks the run it records: a database without the table
 * (verify does not migrate) or a failed write is logged and skipped.
 */

export const RUN_COMMANDS = ['import', 'verify', 'sync', 'files-move', 'files-reconcile', 'archive', 'archive-restore'] as const;
export type RunCommand = (typeof RUN_COMMANDS)[number];
export type RunStatus = 'running' | 'ok' | 'failed' | 'interrupted';

/** The counts a run reports per kind; extra numeric fields of a summary are kept as they are. */
export type RunCounts = Record<string, Record<string, number>>;

export interface RunProblem {
  kind: string;
  file: string | null;
  record: string | null;
  reason: string;
  severity: 'error' | 'warning';
  problem?: string;
}

export interface StartRunInfo {
  command: RunCommand;
  /** What was read: a directory or a store name. Redacted before it is written. */
  source?: string;
  dryRun?: boolean;
  reportPath?: string;
}

export interface FinishRunInfo {
  /** The process exit code: 0 ok, 130 interrupted, anything else failed. */
  exitCode: number;
  /** Per kind, a summary object: its numeric fields are kept. */
  counts?: Record<string, object>;
  problems?: { errors: number; warnings: number; first: readonly RunProblem[] };
  /** Why the run failed; redacted before it is written. */
  error?: unknown;
  /** The final progress object (update() is throttled; this one is always written). */
  progress?: Record<string, unknown>;
}

export interface RunHandle {
  /** The row's id, or undefined when the run is not recorded. */
  readonly id: number | undefined;
  /** Records done of total; written at most once a second. */
  progress(done: number, total: number): void;
  /**
   * A long-running command's own progress object (sync: counts, lag and the
   * last lag samples); written at most once a second, and moves the heartbeat.
   */
  update(progress: Record<string, unknown>): void;
  finish(info: FinishRunInfo): Promise<void>;
  /** The run threw: recorded as failed with the (redacted) error message. */
  fail(error: unknown): Promise<void>;
}

const UNDEFINED_TABLE = '42P01';
const PROGRESS_INTERVAL_MS = 1000;
const EXIT_INTERRUPTED = 130;

const notRecorded: RunHandle = { id: undefined, progress() {}, update() {}, async finish() {}, async fail() {} };

function statusOf(exitCode: number): RunStatus {
  if (exitCode === 0) return 'ok';
  return exitCode === EXIT_INTERRUPTED ? 'interrupted' : 'failed';
}

/** Only numbers survive: a summary's counts are numbers, and nothing else (a path, a message) belongs there. */
function numericCounts(counts: Record<string, object> | undefined): RunCounts {
  const out: RunCounts = {};
  for (const [kind, fields] of Object.entries(counts ?? {})) {
    out[kind] = Object.fromEntries(Object.entries(fields).filter(([, value]) => typeof value === 'number' && Number.isFinite(value)));
  }
  return out;
}

export async function startRun(db: Database, info: StartRunInfo, logger: Logger = silentLogger): Promise<RunHandle> {
  let id: number;
  try {
    const [row] = await db.run(
      'runs.start',
      (sql) => sql<{ id: number }[]>`
        insert into runs (command, source, dry_run, report_path, host, pid)
        values (${info.command}, ${info.source === undefined ? null : redactSecrets(info.source)}, ${info.dryRun ?? false},
                ${info.reportPath ?? null}, ${os.hostname()}, ${process.pid})
        returning id`,
    );
    id = row!.id;
  } catch (error) {
    if (errorCode(error) === UNDEFINED_TABLE) logger.info('run history not recorded: run "pgferry db migrate" to add the runs table');
    else logger.warn({ err: error }, 'run history not recorded');
    return notRecorded;
  }
  return new RecordedRun(db, id, logger);
}

class RecordedRun implements RunHandle {
  private lastWrite = 0;
  private pending: Promise<unknown> = Promise.resolve();

  private readonly db: Database;
  readonly id: number;
  private readonly logger: Logger;

  constructor(db: Database, id: number, logger: Logger) {
    this.db = db;
    this.id = id;
    this.logger = logger;
  }

  progress(done: number, total: number): void {
    this.update({ done, total });
  }

  update(progress: Record<string, unknown>): void {
    const now = performance.now();
    if (now - this.lastWrite < PROGRESS_INTERVAL_MS) return;
    this.lastWrite = now;
    // Fire and forget, one write at a time: progress must never slow the transfer down.
    this.pending = this.pending.then(() =>
      this.db
        .run(
          'runs.progress',
          (sql) => sql`update runs set progress = ${sql.json(progress as never)}, heartbeat_at = now() where id = ${this.id}`,
        )
        .catch((error: unknown) => this.logger.debug({ err: error }, 'run progress not recorded')),
    );
  }

  fail(error: unknown): Promise<void> {
    return this.finish({ exitCode: 1, error });
  }

  async finish(info: FinishRunInfo): Promise<void> {
    await this.pending;
    const problems = info.problems ?? { errors: 0, warnings: 0, first: [] };
    const error = info.error === undefined ? null : redactSecrets(info.error instanceof Error ? info.error.message : String(info.error));
    try {
      await this.db.transaction('runs.finish', async (tx) => {
        await tx`
          update runs
             set status = ${statusOf(info.exitCode)}, exit_code = ${info.exitCode},
                 counts = ${tx.json(numericCounts(info.counts) as never)},
                 progress = ${
                   info.progress === undefined
                     ? tx`case when progress ? 'total' then jsonb_set(progress, '{done}', progress -> 'total') else progress end`
                     : tx`${tx.json(info.progress as never)}`
},
                 problems = ${problems.errors}, warnings = ${problems.warnings}, error = ${error},
                 heartbeat_at = now(), finished_at = now()
           where id = ${this.id}`;
        await tx`delete from run_problems where run_id = ${this.id}`;
        const rows = problems.first.map((line, position) => ({
          run_id: this.id,
          position,
          kind: line.kind,
          file: line.file,
          record: line.record,
          reason: redactSecrets(line.reason),
          severity: line.severity,
          problem: line.problem ?? null,
        }));
        if (rows.length > 0) await tx`insert into run_problems ${tx(rows)}`;
      });
    } catch (failure) {
      this.logger.warn({ err: failure }, 'run result not recorded');
    }
  }
}

export interface RunRow {
  id: number;
  command: string;
  source: string | null;
  dryRun: boolean;
  status: RunStatus;
  /** A running row whose heartbeat stopped more than STALE_AFTER_SECONDS ago: its process is gone. */
  stale: boolean;
  exitCode: number | null;
  counts: RunCounts;
  /** import/verify: records done of total; sync: also its lag and last lag samples (SyncRunProgress). */
  progress: { done?: number; total?: number; [field: string]: unknown };
  problems: number;
  warnings: number;
  reportPath: string | null;
  error: string | null;
  host: string | null;
  pid: number | null;
  startedAt: string;
  finishedAt: string | null;
  durationMs: number;
}

export const STALE_AFTER_SECONDS = 60;

export interface ListRunsOptions {
  limit?: number;
  command?: RunCommand;
  id?: number;
}

/** The latest runs, newest first; [] when the table does not exist yet. */
export async function listRuns(sql: Sql, options: ListRunsOptions = {}): Promise<RunRow[]> {
  const limit = Math.min(Math.max(options.limit ?? 20, 1), 1000);
  try {
    const rows = await sql<Record<string, unknown>[]>`
      select id, command, source, dry_run, status, exit_code, counts, progress, problems, warnings, report_path, error,
             host, pid, started_at, finished_at,
             status = 'running' and heartbeat_at < now() - make_interval(secs => ${STALE_AFTER_SECONDS}) as stale,
             (extract(epoch from coalesce(finished_at, now()) - started_at) * 1000)::bigint as duration_ms
        from runs
       where ${options.command === undefined ? sql`true` : sql`command = ${options.command}`}
         and ${options.id === undefined ? sql`true` : sql`id = ${options.id}`}
       order by started_at desc, id desc
       limit ${limit}`;
    return rows.map(toRunRow);
  } catch (error) {
    if (errorCode(error) === UNDEFINED_TABLE) return [];
    throw error;
  }
}

/** One run, or undefined when there is no such run (or no runs table). */
export async function getRun(sql: Sql, id: number): Promise<RunRow | undefined> {
  return (await listRuns(sql, { id }))[0];
}

export async function runProblems(sql: Sql, runId: number, limit = 1000): Promise<RunProblem[]> {
  try {
    const rows = await sql<RunProblem[]>`
      select kind, file, record, reason, severity, problem from run_problems
       where run_id = ${runId} order by position limit ${limit}`;
    return rows.map((row) => (row.problem === null ? { ...row, problem: undefined } : row)) as RunProblem[];
  } catch (error) {
    if (errorCode(error) === UNDEFINED_TABLE) return [];
    throw error;
  }
}

function toRunRow(row: Record<string, unknown>): RunRow {
  const iso = (value: unknown) => (value instanceof Date ? value.toISOString() : value === null ? null : String(value));
  return {
    id: Number(row.id),
    command: String(row.command),
    source: row.source as string | null,
    dryRun: row.dry_run === true,
    status: row.status as RunStatus,
    stale: row.stale === true,
    exitCode: row.exit_code as number | null,
    counts: (row.counts ?? {}) as RunCounts,
    progress: (row.progress ?? {}) as RunRow['progress'],
    problems: Number(row.problems),
    warnings: Number(row.warnings),
    reportPath: row.report_path as string | null,
    error: row.error as string | null,
    host: row.host as string | null,
    pid: row.pid as number | null,
    startedAt: iso(row.started_at)!,
    finishedAt: iso(row.finished_at),
    durationMs: Number(row.duration_ms),
  };
}
