import path from 'node:path';
import type { Command } from 'commander';
import { removeArchived, restoreArchive, writeArchive } from '../../archive/archive.ts';
import type { Config } from '../../config.ts';
import { formatBytes } from '../../domain/limits.ts';
import { PgFerryError } from '../../errors.ts';
import { type RunHandle, startRun } from '../../runs/record.ts';
import { allKinds } from '../../transfer/kinds/index.ts';
import { ProblemReport } from '../../transfer/report.ts';
import { resolveSourceRoot } from '../../transfer/source.ts';
import { terminalSafe } from '../../transfer/summary.ts';
import { checkTargetUrl, openTarget } from '../../transfer/target.ts';
import { runVerify } from '../../transfer/verify.ts';
import { action, type CommandContext, EXIT, makeContext } from '../context.ts';
import { parseUser } from './import.ts';

interface ArchiveFlags {
  from: string;
  to: string;
  remove?: boolean;
  database?: string;
  defaultUser?: string;
}

const EXAMPLES = `
Examples:
  # phase 5: keep the JSON tree as one checked archive
  pgferry archive --from ./data --to ./json-archive-2026-12-01.tar.gz

  # ... and delete the archived files, once PostgreSQL is proven to hold them all
  pgferry archive --from ./data --to ./json-archive-2026-12-01.tar.gz --remove --database postgres://app@db/app

  # rollback: put them back
  pgferry archive restore ./json-archive-2026-12-01.tar.gz --to ./data

The archive holds the kinds' folders (conversations/, usage/) and a manifest of
every file's size and sha256; it is read back and checked before it gets its
name. --remove first runs verify against the database (it must be clean), then
deletes only files whose bytes still match the manifest.
Exit codes: 0 done, 1 verify not clean or a check failed (nothing deleted), 2 usage or configuration error.`;

export function register(program: Command): void {
  const archive = program
    .command('archive')
    .description('Archive the JSON tree as a checked tar.gz with a sha256 manifest (phase 5), optionally removing the files')
    .option('--from <dir>', "the app's data directory (holds conversations/ and usage/)")
    .option('--to <file.tar.gz>', 'the archive to write (never overwritten)')
    .option('--remove', 'after a clean verify and a checked archive, delete the archived JSON files')
    .option('--database <url>', 'PostgreSQL to verify against before --remove, or "embedded" (default: DATABASE_URL)')
    .option('--default-user <id>', 'as given to import, for the single-user layout', parseUser)
    .addHelpText('after', EXAMPLES)
    .action(action((flags: ArchiveFlags) => archiveCommand(flags)));
  archive
    .command('restore')
    .description('Put an archive’s files back (checked against its manifest; nothing existing is overwritten)')
    .argument('<file.tar.gz>', 'an archive written by pgferry archive')
    .requiredOption('--to <dir>', 'the data directory to restore into')
    .action(action((file: string, flags: { to: string }) => restoreCommand(file, flags)));
}

async function archiveCommand(flags: ArchiveFlags): Promise<number> {
  if (!flags.from || !flags.to)
    throw new PgFerryError('CONFIG_ERROR', 'pass --from <dir> and --to <file.tar.gz> (see pgferry archive --help)');
  const kinds = allKinds();
  const root = await resolveSourceRoot(flags.from, kinds);
  const overrides: Partial<Config> = flags.database === undefined ? {} : { databaseUrl: flags.database };
  const ctx = makeContext(overrides);
  // Check the database setting before writing anything: --remove needs it.
  const url = flags.remove ? checkTargetUrl(ctx.config.databaseUrl, '--database') : undefined;
  const history = await openHistory(ctx, url, { command: 'archive', source: root });
  try {
    const exitCode = await archiveAndRemove(flags, ctx, root, url, history?.counts ?? {});
    await history?.run.finish({ exitCode, counts: history.counts });
    return exitCode;
  } catch (error) {
    await history?.run.fail(error);
    throw error;
  } finally {
    await history?.close();
  }
}

interface History {
  run: RunHandle;
  /** Filled by the command as it goes: what the run row gets as its counts. */
  counts: Record<string, Record<string, number>>;
  close(): Promise<void>;
}

/**
 * The run history needs a database; archiving does not. With DATABASE_URL
 * (or --database) set, the run is recorded; without one, or when it cannot
 * be reached, the archive is written anyway and only a log line says so.
 */
async function openHistory(
  ctx: CommandContext,
  url: string | undefined,
  info: { command: 'archive' | 'archive-restore'; source: string },
): Promise<History | undefined> {
  const databaseUrl = url ?? ctx.config.databaseUrl;
  if (databaseUrl === undefined || databaseUrl === '') return undefined;
  try {
    const target = await openTarget({
      url: checkTargetUrl(databaseUrl, '--database'),
      config: ctx.config,
      logger: ctx.logger,
      connections: 2,
      migrate: false,
    });
    const run = await startRun(target.db, info, ctx.logger);
    const history: History = { run, counts: {}, close: () => target.close() };
    return history;
  } catch (error) {
    ctx.logger.warn({ err: error }, `${info.command}: run history not recorded (database unreachable)`);
    return undefined;
  }
}

async function archiveAndRemove(
  flags: ArchiveFlags,
  ctx: CommandContext,
  root: string,
  url: string | undefined,
  counts: History['counts'],
): Promise<number> {
  const kinds = allKinds();
  const folders = [...new Set(kinds.flatMap((k) => k.folders))];
  const started = performance.now();
  const result = await writeArchive(root, folders, flags.to);
  counts.archive = {
    files: result.manifest.files.length,
    bytes: result.bytes,
    archiveBytes: result.archiveBytes,
    skipped: result.manifest.skipped.length,
  };
  ctx.out(
    `archive: ${result.file} — ${result.manifest.files.length} files, ${formatBytes(result.bytes)} ` +
      `(${formatBytes(result.archiveBytes)} compressed), read back and checked in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  for (const skipped of result.manifest.skipped) ctx.out(`  not archived: ${terminalSafe(skipped.path)} (${skipped.reason})`);
  if (!flags.remove || url === undefined) return EXIT.OK;

  const target = await openTarget({ url, config: ctx.config, logger: ctx.logger, connections: 2, migrate: false });
  try {
    const report = new ProblemReport(undefined, { keep: 5 });
    const verify = await runVerify({ root, db: target.db, defaultUser: flags.defaultUser, report, logger: ctx.logger });
    if (!verify.ok) {
      ctx.out(`verify: the database does not hold exactly these files (${report.errors} problems); nothing deleted. First ones:`);
      for (const line of report.first) ctx.out(`  ${terminalSafe(line.file ?? '-')}: ${terminalSafe(line.reason)}`);
      ctx.out('Run pgferry verify --from … for the full list, fix it (pgferry import or sync), then archive again.');
      return EXIT.CHECK_FAILED;
    }
    ctx.out('verify: clean — the database holds every archived record');
    const removed = await removeArchived(root, result.manifest);
    ctx.out(`removed ${removed.removed} archived files from ${root}`);
    counts.archive = { ...counts.archive, removed: removed.removed, kept: removed.kept.length };
    for (const kept of removed.kept) ctx.out(`  kept ${terminalSafe(kept.path)}: ${kept.reason}`);
    return removed.kept.length > 0 ? EXIT.CHECK_FAILED : EXIT.OK;
  } finally {
    await target.close();
  }
}

async function restoreCommand(file: string, flags: { to: string }): Promise<number> {
  const ctx = makeContext();
  const dir = path.resolve(flags.to);
  const history = await openHistory(ctx, undefined, { command: 'archive-restore', source: path.resolve(file) });
  let result: Awaited<ReturnType<typeof restoreArchive>>;
  try {
    result = await restoreArchive(path.resolve(file), dir);
    await history?.run.finish({ exitCode: EXIT.OK, counts: { archive: { restored: result.restored, present: result.present } } });
  } catch (error) {
    await history?.run.fail(error);
    throw error;
  } finally {
    await history?.close();
  }
  ctx.out(`restored ${result.restored} files into ${dir} (${result.present} were there already, identical); all match the manifest`);
  return EXIT.OK;
}
