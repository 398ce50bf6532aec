import path from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { Config } from '../../config.ts';
import { isValidUserId } from '../../domain/ids.ts';
import { formatBytes } from '../../domain/limits.ts';
import { PgFerryError } from '../../errors.ts';
import { isTimeZone } from '../../formats/forms-common.ts';
import { DEFAULT_INLINE_WARN_BYTES } from '../../formats/forms-submission.ts';
import { startRun } from '../../runs/record.ts';
import { writeBackup } from '../../transfer/backup.ts';
import type { ImportSummary } from '../../transfer/import.ts';
import { allKinds, kindNamed, kindNames, selectKinds } from '../../transfer/kinds/index.ts';
import type { FormsSettings } from '../../transfer/kinds/types.ts';
import { DEFAULT_MAX_DEPTH, DEFAULT_MAX_FILE_SIZE, MAX_FILE_SIZE_CEILING, parseSize } from '../../transfer/limits.ts';
import { LOAD_METHODS, type LoadMethod } from '../../transfer/load.ts';
import { ProgressDisplay } from '../../transfer/progress.ts';
import { checkWritable } from '../../transfer/report.ts';
import { resolveSourceRoot } from '../../transfer/source.ts';
import { formatTable, peakRssMb, perSecond, seconds, terminalSafe } from '../../transfer/summary.ts';
import { checkTargetUrl, lockImport, openTarget } from '../../transfer/target.ts';
import { type EngineResult, runInWorker } from '../../transfer/worker.ts';
import { action, EXIT, makeContext } from '../context.ts';
import { addUploadsStoreOptions, importUploadsStoreCommand, type UploadsStoreFlags } from './uploads-store.ts';

/** A report path as the run history shows it: absolute, so it can be found from anywhere. */
export function absolute(file: string | undefined): string | undefined {
  return file === undefined ? undefined : path.resolve(file);
}

/** Exit code of a run stopped with Ctrl-C (128 + SIGINT), as shells report it. */
export const EXIT_INTERRUPTED = 130;

export function parseCount(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
    return n;
  };
}

/** `--only`: names from the kind registry (kinds/index.ts), comma-separated. */
export function parseKinds(value: string): string[] {
  const kinds = value
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  const known = kindNames();
  const unknown = kinds.filter((k) => !known.includes(k));
  if (kinds.length === 0 || unknown.length > 0) {
    throw new InvalidArgumentError(
      `expected a comma-separated list of ${known.join(', ')}${unknown.length ? `; unknown: ${unknown.join(', ')}` : ''}`,
    );
  }
  return [...new Set(kinds)];
}

/** What the engine thread needs to know of the chosen kinds: their names and the modules that define them. */
export function kindJob(only: readonly string[] | undefined): { kinds: string[]; kindModules: string[] } {
  const kinds = selectKinds(only);
  // Names as given (the summary lists them in that order); the engine scans in registry order.
  return { kinds: only ? [...only] : kinds.map((k) => k.name), kindModules: kinds.map((k) => k.module) };
}

/** `--max-file-size`: a size such as 64MiB, 200MB, 512k or a number of bytes, up to MAX_FILE_SIZE_CEILING. */
export function parseMaxFileSize(value: string): number {
  const bytes = parseSize(value);
  if (!Number.isFinite(bytes) || bytes < 1 || bytes > MAX_FILE_SIZE_CEILING)
    throw new InvalidArgumentError(`expected a size from 1 byte to ${formatBytes(MAX_FILE_SIZE_CEILING)}, such as 64MiB, 200MB or 1048576`);
  return bytes;
}

/** The limit flags import and verify share (the same defaults, so verify reads what import read). */
export function addLimitOptions(command: Command): Command {
  return command
    .addOption(
      new Option(
        '--max-file-size <size>',
        `a larger file is reported and not read (the store's own conversations stay far below; at most ${formatBytes(MAX_FILE_SIZE_CEILING)})`,
      )
        .argParser(parseMaxFileSize)
        .default(DEFAULT_MAX_FILE_SIZE, formatBytes(DEFAULT_MAX_FILE_SIZE)),
    )
    .option(
      '--max-depth <n>',
      'JSON nested deeper than this is reported and not parsed',
      parseCount('--max-depth', 1, 100_000),
      DEFAULT_MAX_DEPTH,
    );
}

/** The forms app's flags import and verify share (kinds submissions and jobs); verify must read what import read. */
export interface FormsFlags {
  sourceTimezone: string;
  module?: string;
  inlineWarnSize: number;
}

export function parseTimeZone(value: string): string {
  if (!isTimeZone(value)) throw new InvalidArgumentError('not a time zone this runtime knows (an IANA name such as Asia/Dubai, or UTC)');
  return value;
}

export function parseModule(value: string): string {
  if (!/^[a-z][a-z0-9_]{0,49}$/.test(value)) throw new InvalidArgumentError('expected a module name such as civil, hvac_mep or cleaning');
  return value;
}

export function addFormsOptions(command: Command): Command {
  return command
    .option(
      '--source-timezone <zone>',
      "forms app: the server's zone for naive local times (a submission's `timestamp`, an ISO completed_at)",
      parseTimeZone,
      'UTC',
    )
    .option('--module <name>', 'forms app: module of a submission that neither its document, its layout nor its job names', parseModule)
    .addOption(
      new Option('--inline-warn-size <size>', 'forms app: note inline base64 data URLs larger than this (they are kept all the same)')
        .argParser(parseMaxFileSize)
        .default(DEFAULT_INLINE_WARN_BYTES, formatBytes(DEFAULT_INLINE_WARN_BYTES)),
    );
}

export const formsSettings = (flags: FormsFlags): FormsSettings => ({
  sourceTimezone: flags.sourceTimezone,
  module: flags.module,
  inlineWarnBytes: flags.inlineWarnSize,
});

export function parseUser(value: string): string {
  if (!isValidUserId(value)) throw new InvalidArgumentError('not a valid user id (1-128 letters, digits and _.@|+=:-)');
  return value;
}

interface ImportFlags extends FormsFlags, UploadsStoreFlags {
  from: string;
  to?: string;
  only?: string[];
  defaultUser?: string;
  dryRun?: boolean;
  backup?: string;
  batch: number;
  jobs: number;
  report?: string;
  prune?: boolean;
  loadMethod: LoadMethod;
  maxFileSize: number;
  maxDepth: number;
}

const EXAMPLES = `
Examples:
  # try it end to end on a generated corpus, with a local PostgreSQL
  pgferry sample-data ./sample
  DATABASE_URL=embedded pgferry import --from ./sample

  # the app's data directory into a server, with a backup and a report of every problem
  pgferry import --from ./data --to postgres://app@db/app --backup ./data-backup.tar.gz --report import-problems.jsonl

  # the original single-user layout (data/conversations/<id>.json)
  pgferry import --from ./data --default-user alice

  # see what would change, write nothing
  pgferry import --from ./data --dry-run

  # after deleting files from the source, remove their records too
  pgferry import --from ./data --prune

  # the forms app's generated/ tree (submissions/, jobs/), written by a server in Dubai
  pgferry import --from ./generated --only submissions,jobs --source-timezone Asia/Dubai
  # seed 000's upload store, with its files checked and linked into DATA_DIR/files
  pgferry import --uploads-store ./user_uploads_store.json --files-root ./app

Re-running is safe: unchanged records are skipped, edited ones replaced. If the
run is interrupted (Ctrl-C, a crash, kill -9), run the same command again.
Exit codes: 0 all imported, 1 something rejected (see the report), 2 usage or
configuration error, 130 interrupted by Ctrl-C.`;

export function register(program: Command): void {
  const command = program
    .command('import')
    .description(
      "Import the apps' JSON files (chat: conversations, usage; forms: submissions, jobs; seed 000's upload store) into PostgreSQL: every record imported or reported",
    )
    .option(
      '--from <dir>',
      "the app's data directory (holds conversations/ and usage/, or the forms app's submissions/ and jobs/); required unless --uploads-store",
    )
    .option('--to <url>', 'PostgreSQL URL, or "embedded" (default: DATABASE_URL)')
    .option('--only <kinds>', `import only these kinds: ${kindNames().join(',')}`, parseKinds)
    .option('--default-user <id>', 'owner of conversations in the single-user layout (conversations/<id>.json)', parseUser)
    .option('--dry-run', 'read, validate and compare with the database; write nothing')
    .option('--backup <file.tar.gz>', 'first write a tar.gz of the source tree with a sha256 manifest')
    .option('--batch <n>', 'records per batch (one transaction each)', parseCount('--batch', 1, 100_000), 500)
    .option('--jobs <n>', 'batches loading at once', parseCount('--jobs', 1, 32), 2)
    .option('--report <file>', 'write every problem as JSON Lines {kind, file, record, reason, severity}')
    .option('--prune', 'delete records imported earlier whose source file is gone (otherwise they are only reported)')
    .addOption(
      new Option('--load-method <method>', 'how batches are written (benchmarking)').choices(LOAD_METHODS).default('copy').hideHelp(),
    );
  addUploadsStoreOptions(command, 'import');
  addFormsOptions(addLimitOptions(command))
    .addHelpText('after', EXAMPLES)
    .action(action((flags: ImportFlags) => importSources(flags)));
}

/**
 * What import and verify check before touching the database: a readable
 * source directory, a target URL (`--to` over DATABASE_URL) and a writable
 * report file — each a usage error (exit 2) when wrong.
 */
export async function prepareTransfer(flags: { from: string; to?: string; report?: string }) {
  const root = await resolveSourceRoot(flags.from, allKinds());
  const overrides: Partial<Config> = flags.to === undefined ? {} : { databaseUrl: flags.to };
  const ctx = makeContext(overrides);
  const url = checkTargetUrl(ctx.config.databaseUrl);
  if (flags.report) await checkWritable(flags.report);
  return { root, ctx, url };
}

/** `--from DIR` (the per-file kinds), `--uploads-store FILE` (seed 000's store), or both in turn. */
async function importSources(flags: ImportFlags): Promise<number> {
  if (flags.from === undefined && flags.uploadsStore === undefined)
    throw new PgFerryError('CONFIG_ERROR', 'import: expected --from DIR, --uploads-store FILE, or both');
  if (flags.filesRoot !== undefined && flags.uploadsStore === undefined)
    throw new PgFerryError('CONFIG_ERROR', '--files-root needs --uploads-store');
  const code = flags.from === undefined ? EXIT.OK : await importCommand(flags);
  if (flags.uploadsStore === undefined || code === EXIT_INTERRUPTED) return code;
  return Math.max(code, await importUploadsStoreCommand(flags));
}

async function importCommand(flags: ImportFlags): Promise<number> {
  const { root, ctx, url } = await prepareTransfer(flags);
  const kinds = kindJob(flags.only);

  if (flags.backup) {
    const started = performance.now();
    const folders = kinds.kinds.flatMap((name) => kindNamed(name).folders);
    const backup = await writeBackup(root, folders, flags.backup);
    ctx.out(
      `backup: ${backup.file} — ${backup.files.toLocaleString('en-US')} files, ${(backup.bytes / 1_048_576).toFixed(1)} MB ` +
        `(${(backup.archiveBytes / 1_048_576).toFixed(1)} MB compressed) in ${seconds(performance.now() - started)}; manifest inside`,
    );
  }

  // The main thread migrates and holds the one-import-at-a-time lock; the worker does the transfer.
  const target = await openTarget({ url, config: ctx.config, logger: ctx.logger, connections: 2, migrate: !flags.dryRun });
  let unlock: (() => Promise<void>) | undefined;
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) {
      process.stderr.write('\npgferry: stopping now; batches not committed will be loaded by the next run\n');
      process.exit(EXIT_INTERRUPTED);
    }
    controller.abort();
    process.stderr.write('\npgferry: finishing the batches in flight, then stopping (Ctrl-C again to stop at once)…\n');
  };
  process.on('SIGINT', onSigint);
  const progress = new ProgressDisplay({
    label: flags.dryRun ? 'dry run' : 'import',
    tty: process.stderr.isTTY === true,
    logger: ctx.logger,
  });
  let run: Awaited<ReturnType<typeof startRun>> | undefined;
  try {
    // A running `pgferry sync` holds the lock a batch at a time: queue behind it (up to a minute).
    if (!flags.dryRun) unlock = await lockImport(target.db, 60);
    // A dry run writes nothing, not even its history row.
    if (!flags.dryRun) run = await startRun(target.db, { command: 'import', source: root, reportPath: absolute(flags.report) }, ctx.logger);
    const { summary, problems } = await runInWorker(
      {
        command: 'import',
        url: target.url,
        root,
        ...kinds,
        defaultUser: flags.defaultUser,
        dryRun: flags.dryRun,
        batchSize: flags.batch,
        jobs: flags.jobs,
        prune: flags.prune,
        config: ctx.config,
        method: flags.loadMethod,
        reportFile: flags.report,
        limits: { maxFileSize: flags.maxFileSize, maxDepth: flags.maxDepth },
        forms: formsSettings(flags),
      },
      {
        signal: controller.signal,
        onStart: (totals) => progress.start(totals.records, totals.bytes),
        onProgress: (state) => {
          progress.update(state);
          run?.progress(state.records, state.totalRecords);
        },
      },
    );
    progress.stop();
    printSummary(ctx.out, summary, problems, flags);
    const exitCode = summary.interrupted ? EXIT_INTERRUPTED : problems.errors > 0 ? EXIT.CHECK_FAILED : EXIT.OK;
    await run?.finish({ exitCode, counts: summary.kinds, problems });
    if (summary.interrupted) {
      ctx.out(
        'Interrupted: the batches in flight were committed. Run the same command again to resume; records already imported are skipped.',
      );
    }
    return exitCode;
  } catch (error) {
    await run?.fail(error);
    throw error;
  } finally {
    progress.stop();
    process.off('SIGINT', onSigint);
    await unlock?.();
    await target.close();
  }
}

function printSummary(
  out: (line: string) => void,
  summary: ImportSummary,
  report: EngineResult<ImportSummary>['problems'],
  flags: ImportFlags,
): void {
  // A kind with nothing in the source and nothing gone (the forms kinds on a chat tree) is left out unless --only names it.
  const shown = Object.entries(summary.kinds).filter(([kind, c]) => flags.only?.includes(kind) || Object.values(c).some((n) => n > 0));
  const rows = shown.map(([kind, c]) => [
    kind,
    c.read,
    c.inserted,
    c.updated,
    c.unchanged,
    c.rejected,
    c.warnings,
    flags.prune ? c.pruned : c.vanished,
  ]);
  const would = summary.dryRun ? ' (dry run: nothing written; "inserted"/"updated" is what would be)' : '';
  out('');
  out(`import summary${would}`);
  out(formatTable(['kind', 'read', 'inserted', 'updated', 'unchanged', 'rejected', 'warnings', flags.prune ? 'pruned' : 'gone'], rows));
  out(
    `${summary.messages.toLocaleString('en-US')} messages ${summary.dryRun ? 'to write' : 'written'}, ${(summary.bytes / 1_048_576).toFixed(1)} MB read in ${seconds(summary.elapsedMs)} ` +
      `(${perSecond(summary.messages, summary.elapsedMs)} messages/s, method ${summary.method}); peak RSS ${peakRssMb()} MB`,
  );
  const all = Object.values(summary.kinds);
  const changed = all.reduce((n, c) => n + c.inserted + c.updated + c.pruned, 0);
  const unchanged = all.reduce((n, c) => n + c.unchanged, 0);
  if (!summary.interrupted && changed === 0 && unchanged > 0)
    out(`Nothing to change: all ${unchanged.toLocaleString('en-US')} records are already in the database.`);
  const gone = all.reduce((n, c) => n + c.vanished, 0);
  if (gone > 0 && !flags.prune) out(`${gone} records imported earlier have no source file any more; run with --prune to delete them.`);
  if (report.errors + report.warnings > 0) {
    out('');
    out(`${report.errors} problems, ${report.warnings} warnings${flags.report ? ` — all in ${path.resolve(flags.report)}` : ''}:`);
    for (const line of report.first)
      out(
        `  ${line.severity === 'error' ? 'error  ' : 'warning'} ${terminalSafe(line.file ?? '-')} [${terminalSafe(line.record ?? '-')}]: ${terminalSafe(line.reason)}`,
      );
    if (report.errors + report.warnings > report.first.length) out(flags.report ? '  …' : '  … (pass --report FILE for the full list)');
  }
}
