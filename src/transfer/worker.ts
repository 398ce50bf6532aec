import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { Config } from '../config.ts';
import { connectWithConfig } from '../db/connect.ts';
import { PgFerryError } from '../errors.ts';
import { createLogger } from '../log.ts';
import { type ImportSummary, runImport } from './import.ts';
import { loadKindModules } from './kinds/index.ts';
import type { FormsSettings } from './kinds/types.ts';
import type { TransferLimits } from './limits.ts';
import type { LoadMethod } from './load.ts';
import type { ProgressState } from './progress.ts';
import { type ProblemLine, ProblemReport } from './report.ts';
import { runVerify, type VerifySummary } from './verify.ts';

/**
 * The CLI runs import and verify in a worker thread whose young generation is
 * capped (resourceLimits). V8 otherwise sizes the nursery by the machine's
 * memory (128 MB here) and, with a transfer's allocation rate, keeps it full:
 * the process would sit at 300+ MB while less than 40 MB is live. With the
 * cap the peak RSS stays around 200 MB whatever the corpus size. The main
 * thread keeps the terminal: progress bar, Ctrl-C, the summary.
 *
 * The library entry points (runImport, runVerify) do not need this; it is how
 * the CLI hosts them.
 */

export interface EngineJob {
  command: 'import' | 'verify';
  /** A resolved postgres:// URL (the main thread starts an embedded server, runs migrations and holds the import lock). */
  url: string;
  root: string;
  /** Kind names. */
  kinds: string[];
  /** Modules of those kinds (KindDescriptor.module): this thread starts with the built-in kinds only. */
  kindModules: string[];
  defaultUser?: string;
  forms?: FormsSettings;
  dryRun?: boolean;
  batchSize: number;
  jobs: number;
  prune?: boolean;
  /** The command's configuration: the worker connects with its pool, timeouts and slow-query threshold, and logs at its level. */
  config: Config;
  method?: LoadMethod;
  reportFile?: string;
  limits?: TransferLimits;
}

export interface EngineResult<S> {
  summary: S;
  problems: { errors: number; warnings: number; first: ProblemLine[] };
}

type FromWorker =
  | { type: 'start'; records: number; bytes: number }
  | { type: 'progress'; state: ProgressState }
  | { type: 'done'; result: EngineResult<ImportSummary | VerifySummary> }
  | { type: 'error'; code?: string; message: string };

export interface EngineHooks {
  onStart?: (totals: { records: number; bytes: number }) => void;
  onProgress?: (state: ProgressState) => void;
  signal?: AbortSignal;
}

const WORKER_LIMITS = { maxYoungGenerationSizeMb: 24, maxOldGenerationSizeMb: 2048 };

export function runInWorker(job: EngineJob & { command: 'import' }, hooks: EngineHooks): Promise<EngineResult<ImportSummary>>;
export function runInWorker(job: EngineJob & { command: 'verify' }, hooks: EngineHooks): Promise<EngineResult<VerifySummary>>;
export function runInWorker(job: EngineJob, hooks: EngineHooks): Promise<EngineResult<ImportSummary | VerifySummary>> {
  // The same file is the worker's entry: .ts in a checkout, .js once built.
  const worker = new Worker(new URL(import.meta.url), { workerData: job, resourceLimits: WORKER_LIMITS });
  const abort = () => worker.postMessage({ type: 'abort' });
  hooks.signal?.addEventListener('abort', abort, { once: true });
  return new Promise((resolve, reject) => {
    let settled = false;
    worker.on('message', (message: FromWorker) => {
      if (message.type === 'start') hooks.onStart?.({ records: message.records, bytes: message.bytes });
      else if (message.type === 'progress') hooks.onProgress?.(message.state);
      else if (message.type === 'done') {
        settled = true;
        void worker.terminate();
        resolve(message.result);
      } else {
        settled = true;
        void worker.terminate();
        reject(
          message.code && message.code in { CONFIG_ERROR: 1, UNAVAILABLE: 1, CONFLICT: 1, INVALID_INPUT: 1, MIGRATION_ERROR: 1 }
            ? new PgFerryError(message.code as 'CONFIG_ERROR', message.message)
            : new Error(message.message),
        );
      }
    });
    worker.on('error', (error) => {
      settled = true;
      reject(error);
    });
    worker.on('exit', (code) => {
      hooks.signal?.removeEventListener('abort', abort);
      if (!settled) reject(new Error(`the ${job.command} worker exited with code ${code}`));
    });
  });
}

async function workerMain(job: EngineJob): Promise<void> {
  const port = parentPort!;
  const post = (message: FromWorker) => port.postMessage(message);
  const controller = new AbortController();
  port.on('message', (message: { type: string }) => {
    if (message.type === 'abort') controller.abort();
  });
  await loadKindModules(job.kindModules);
  const logger = createLogger({ level: job.config.logLevel });
  // A report file that stops taking writes (disk full) stops the run like Ctrl-C; close() then throws its error.
  const report = new ProblemReport(job.reportFile, { onFailure: () => controller.abort() });
  const db = await connectWithConfig(job.config, job.url, {
    role: 'transfer',
    logger,
    connections: job.command === 'verify' ? job.jobs * 2 + 1 : job.jobs + 1,
    applicationName: `pgferry ${job.command}`,
  });
  try {
    const common = {
      root: job.root,
      db,
      kinds: job.kinds,
      defaultUser: job.defaultUser,
      forms: job.forms,
      batchSize: job.batchSize,
      jobs: job.jobs,
      limits: job.limits,
      logger,
      report,
      onStart: (totals: { records: number; bytes: number }) => post({ type: 'start', ...totals }),
      onProgress: (state: ProgressState) => post({ type: 'progress', state }),
    };
    const summary =
      job.command === 'import'
        ? await runImport({
            ...common,
            dryRun: job.dryRun,
            prune: job.prune,
            tierLimits: job.config.tierLimits,
            method: job.method,
            signal: controller.signal,
          })
        : await runVerify(common);
    await report.close();
    post({ type: 'done', result: { summary, problems: { errors: report.errors, warnings: report.warnings, first: report.first } } });
  } finally {
    await report.close();
    await db.close();
  }
}

if (!isMainThread && (workerData as EngineJob | undefined)?.command) {
  workerMain(workerData as EngineJob).catch((error: unknown) => {
    parentPort!.postMessage({
      type: 'error',
      code: error instanceof PgFerryError ? error.code : undefined,
      message: error instanceof Error ? error.message : String(error),
    } satisfies FromWorker);
  });
}
