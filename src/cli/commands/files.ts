import cliProgress from 'cli-progress';
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { Config } from '../../config.ts';
import { PgFerryError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { type RunProblem, startRun } from '../../runs/record.ts';
import { type MoveProgress, type MoveSummary, moveFiles } from '../../transfer/files/move.ts';
import { localStore, type ObjectStore } from '../../transfer/files/object-store.ts';
import { reconcileStore } from '../../transfer/files/reconcile.ts';
import { formatTable, peakRssMb, seconds, terminalSafe } from '../../transfer/summary.ts';
import { checkTargetUrl, openTarget } from '../../transfer/target.ts';
import { action, EXIT, makeContext } from '../context.ts';
import { EXIT_INTERRUPTED, parseCount } from './import.ts';

/**
 * `pgferry files move --to s3|local` and `pgferry files reconcile`: the bytes
 * of uploads between object stores (src/transfer/files/).
 */

export const STORE_KINDS = ['local', 's3'] as const;
export type StoreKind = (typeof STORE_KINDS)[number];

/** The object store of a kind, from the configuration: local = DATA_DIR/files; s3 = S3_BUCKET_NAME at S3_ENDPOINT or AWS. */
export async function openStore(kind: StoreKind, config: Config): Promise<ObjectStore> {
  if (kind === 'local') return localStore(config.dataDir);
  const { s3Store } = await import('../../transfer/files/stores.ts');
  return s3Store(config);
}

const MOVE_EXAMPLES = `
Examples:
  # every upload stored locally (DATA_DIR/files) to S3, 8 at a time
  S3_BUCKET_NAME=uploads AWS_REGION=eu-central-1 pgferry files move --to s3 --concurrency 8
  # what would move, without moving
  pgferry files move --to s3 --dry-run
  # back to local disk, deleting each S3 object once its row points at the local copy
  pgferry files move --to local --delete-source

Each object is copied, read back and checked (size and sha256) before its row
switches, in one transaction; the source is deleted only with --delete-source
and only after that. Every object has a row in file_moves (status, attempts,
error; seed 004's s3_migration_log / s3_migration_progress). Interrupted or
failed: run the same command again. Exit codes: 0 all moved, 1 some failed,
2 usage or configuration error.`;

const RECONCILE_EXAMPLES = `
Examples:
  pgferry files reconcile                 # local store (DATA_DIR/files)
  pgferry files reconcile --store s3 --fix --grace 48h

Lists objects no row names (orphans), rows whose object is missing, and rows
whose object's size or sha256 differs. --fix deletes orphans older than the
grace period only; rows are never changed. Exit 1 when anything is left.`;

export function parseDuration(value: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError('expected a duration such as 30m, 24h or 7d');
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}

export function register(program: Command): void {
  const files = program
    .command('files')
    .description('Move the bytes of uploads between object stores, and reconcile a store with its rows');
  files
    .command('move')
    .description('Move every upload to another object store: copy, verify size and sha256, switch the row, log it in file_moves')
    .addOption(new Option('--to <store>', 'target store').choices(STORE_KINDS).makeOptionMandatory())
    .option('--db <url>', 'PostgreSQL URL, or "embedded" (default: DATABASE_URL)')
    .option('--concurrency <n>', 'objects copied at once', parseCount('--concurrency', 1, 64), 4)
    .option('--attempts <n>', 'tries per object before it is marked failed', parseCount('--attempts', 1, 20), 4)
    .option('--delete-source', 'delete each source object after its row points at the target')
    .option('--dry-run', 'count what would move; change nothing')
    .addHelpText('after', MOVE_EXAMPLES)
    .action(action((flags: MoveFlags) => moveCommand(flags)));
  files
    .command('reconcile')
    .description('Find orphaned objects, rows whose object is missing, and objects that differ from their row')
    .addOption(new Option('--store <store>', 'store to check').choices(STORE_KINDS).default('local'))
    .option('--db <url>', 'PostgreSQL URL, or "embedded" (default: DATABASE_URL)')
    .option('--fix', 'delete orphans older than the grace period')
    .option('--grace <duration>', 'orphans younger than this are left alone (uploads and moves in flight)', parseDuration, 86_400_000)
    .option('--no-hash', 'compare sizes only (do not read every object)')
    .addHelpText('after', RECONCILE_EXAMPLES)
    .action(action((flags: ReconcileFlags) => reconcileCommand(flags)));
}

interface MoveFlags {
  to: StoreKind;
  db?: string;
  concurrency: number;
  attempts: number;
  deleteSource?: boolean;
  dryRun?: boolean;
}

interface ReconcileFlags {
  store: StoreKind;
  db?: string;
  fix?: boolean;
  grace: number;
  hash: boolean;
}

async function open(db: string | undefined) {
  const ctx = makeContext(db === undefined ? {} : { databaseUrl: db });
  const url = checkTargetUrl(ctx.config.databaseUrl, '--db');
  const target = await openTarget({ url, config: ctx.config, logger: ctx.logger, connections: 4, migrate: false });
  return { ctx, target };
}

async function moveCommand(flags: MoveFlags): Promise<number> {
  const { ctx, target } = await open(flags.db);
  const from: StoreKind = flags.to === 's3' ? 'local' : 's3';
  const controller = new AbortController();
  const onSigint = () => {
    controller.abort();
    process.stderr.write('\npgferry: finishing the objects in flight, then stopping…\n');
  };
  process.on('SIGINT', onSigint);
  const progress = new MoveProgressDisplay(`files move → ${flags.to}`, process.stderr.isTTY === true, ctx.logger);
  // A dry run changes nothing and records nothing (as import --dry-run).
  const run = flags.dryRun ? undefined : await startRun(target.db, { command: 'files-move', source: `${from} → ${flags.to}` }, ctx.logger);
  try {
    const source = await openStore(from, ctx.config);
    const destination = await openStore(flags.to, ctx.config);
    if (source.kind === destination.kind) throw new PgFerryError('CONFIG_ERROR', 'files move: source and target are the same store');
    const summary = await moveFiles({
      db: target.db,
      from: source,
      to: destination,
      concurrency: flags.concurrency,
      attempts: flags.attempts,
      deleteSource: flags.deleteSource,
      dryRun: flags.dryRun,
      signal: controller.signal,
      onProgress: (state) => {
        progress.update(state);
        run?.progress(state.objects, state.totalObjects);
      },
    });
    progress.stop();
    const mb = (n: number) => (n / 1_048_576).toFixed(1);
    ctx.out('');
    ctx.out(`files move ${from} → ${flags.to}${summary.dryRun ? ' (dry run: nothing moved)' : ''}`);
    ctx.out(
      formatTable(
        ['objects', 'MB', 'migrated', 'failed', 'skipped', 'source deleted'],
        [[summary.selected, mb(summary.totalBytes), summary.migrated, summary.failed, summary.skipped, summary.sourceDeleted]],
      ),
    );
    const secs = summary.elapsedMs / 1000;
    if (!summary.dryRun)
      ctx.out(
        `${mb(summary.bytes)} MB moved in ${seconds(summary.elapsedMs)} (${secs > 0 ? (summary.migrated / secs).toFixed(1) : '-'} objects/s, ` +
          `${secs > 0 ? (summary.bytes / 1_048_576 / secs).toFixed(1) : '-'} MB/s); peak RSS ${peakRssMb()} MB`,
      );
    for (const failure of summary.failures.slice(0, 20))
      ctx.out(`  failed ${failure.id} ${terminalSafe(failure.key)}: ${terminalSafe(failure.error)}`);
    if (summary.failed > 0) ctx.out(`${summary.failed} objects failed (see file_moves); run the same command again to retry them.`);
    if (controller.signal.aborted) ctx.out('Interrupted: run the same command again to finish.');
    const exitCode = summary.failed > 0 || controller.signal.aborted ? EXIT.CHECK_FAILED : EXIT.OK;
    await run?.finish({
      // The history tells an interrupted move from a failed one; the process exit code stays 1 (documented above).
      exitCode: controller.signal.aborted ? EXIT_INTERRUPTED : exitCode,
      counts: {
        objects: {
          selected: summary.selected,
          migrated: summary.migrated,
          failed: summary.failed,
          skipped: summary.skipped,
          sourceDeleted: summary.sourceDeleted,
          bytes: summary.bytes,
        },
      },
      problems: moveProblems(summary.failures, summary.failed),
    });
    return exitCode;
  } catch (error) {
    await run?.fail(error);
    throw error;
  } finally {
    progress.stop();
    process.off('SIGINT', onSigint);
    await target.close();
  }
}

/** The first failed objects as run problems (the admin page links them); file_moves has them all. */
function moveProblems(failures: MoveSummary['failures'], failed: number) {
  const first: RunProblem[] = failures
    .slice(0, 20)
    .map((f) => ({ kind: 'object', file: f.key, record: f.id, reason: f.error, severity: 'error' as const }));
  return { errors: failed, warnings: 0, first };
}

async function reconcileCommand(flags: ReconcileFlags): Promise<number> {
  const { ctx, target } = await open(flags.db);
  const run = await startRun(target.db, { command: 'files-reconcile', source: flags.store }, ctx.logger);
  try {
    const store = await openStore(flags.store, ctx.config);
    const s = await reconcileStore({ db: target.db, store, hash: flags.hash, fix: flags.fix, graceMs: flags.grace });
    const left = s.findings.filter((f) => !f.fixed);
    await run.finish({
      exitCode: s.ok ? EXIT.OK : EXIT.CHECK_FAILED,
      counts: {
        objects: {
          objects: s.objects,
          rows: s.rows,
          orphans: s.orphans,
          orphansDeleted: s.orphansDeleted,
          missing: s.missing,
          different: s.different,
        },
      },
      problems: {
        errors: left.length,
        warnings: 0,
        first: left.slice(0, 20).map((f) => ({
          kind: 'object',
          file: f.key,
          record: f.id,
          reason: f.reason,
          severity: 'error' as const,
          problem: f.problem,
        })),
      },
    });
    ctx.out(`files reconcile (${flags.store})`);
    ctx.out(
      formatTable(
        ['objects', 'rows', 'orphans', 'orphans deleted', 'missing', 'different'],
        [[s.objects, s.rows, s.orphans, s.orphansDeleted, s.missing, s.different]],
      ),
    );
    for (const f of s.findings.slice(0, 50))
      ctx.out(`  ${f.fixed ? 'deleted' : f.problem} ${terminalSafe(f.key)}${f.id ? ` [${f.id}]` : ''}: ${terminalSafe(f.reason)}`);
    if (s.findings.length > 50) ctx.out(`  … ${s.findings.length - 50} more`);
    if (s.ok) ctx.out('OK: every row has its object and every object its row.');
    return s.ok ? EXIT.OK : EXIT.CHECK_FAILED;
  } catch (error) {
    await run.fail(error);
    throw error;
  } finally {
    await target.close();
  }
}

/** Objects, MB, MB/s and an ETA from bytes (object sizes vary a thousandfold): a bar on a terminal, log lines otherwise. */
class MoveProgressDisplay {
  private bar: cliProgress.SingleBar | undefined;
  private readonly started = performance.now();
  private lastLog = 0;
  private last: MoveProgress | undefined;
  private readonly label: string;
  private readonly tty: boolean;
  private readonly logger: Logger;

  constructor(label: string, tty: boolean, logger: Logger) {
    this.label = label;
    this.tty = tty;
    this.logger = logger;
  }

  update(state: MoveProgress): void {
    this.last = state;
    const payload = this.payload(state);
    if (this.tty) {
      if (!this.bar) {
        this.bar = new cliProgress.SingleBar(
          {
            format: `${this.label} [{bar}] {value}/{total} objects | {mb}/{totalMb} MB | {rate} MB/s | ETA {etaText}`,
            stream: process.stderr,
            hideCursor: true,
            fps: 5,
          },
          cliProgress.Presets.shades_classic,
        );
        this.bar.start(state.totalObjects, state.objects, payload);
      } else this.bar.update(state.objects, payload);
      return;
    }
    const now = performance.now();
    if (now - this.lastLog >= 5000 || state.objects === state.totalObjects) {
      this.lastLog = now;
      this.logger.info(
        { ...state, ...payload },
        `${this.label}: ${state.objects}/${state.totalObjects} objects, ${payload.mb}/${payload.totalMb} MB`,
      );
    }
  }

  private payload(state: MoveProgress) {
    const secs = (performance.now() - this.started) / 1000;
    const rate = secs > 0 ? state.bytes / secs : 0;
    const eta = rate > 0 ? Math.round((state.totalBytes - state.bytes) / rate) : null;
    return {
      mb: (state.bytes / 1_048_576).toFixed(1),
      totalMb: (state.totalBytes / 1_048_576).toFixed(1),
      rate: (rate / 1_048_576).toFixed(1),
      etaText: eta === null ? '-' : `${eta}s`,
    };
  }

  stop(): void {
    if (this.bar && this.last) this.bar.update(this.last.objects, this.payload(this.last));
    this.bar?.stop();
    this.bar = undefined;
  }
}
