import path from 'node:path';
import type { Command } from 'commander';
import { recordVerifyRun } from '../../cutover/status.ts';
import { PgFerryError } from '../../errors.ts';
import { startRun } from '../../runs/record.ts';
import { kindNames } from '../../transfer/kinds/index.ts';
import { ProgressDisplay } from '../../transfer/progress.ts';
import { formatTable, peakRssMb, perSecond, seconds, terminalSafe } from '../../transfer/summary.ts';
import { openTarget } from '../../transfer/target.ts';
import { runInWorker } from '../../transfer/worker.ts';
import { action, EXIT } from '../context.ts';
import {
  absolute,
  addFormsOptions,
  addLimitOptions,
  type FormsFlags,
  formsSettings,
  kindJob,
  parseCount,
  parseKinds,
  parseUser,
  prepareTransfer,
} from './import.ts';
import { addUploadsStoreOptions, type UploadsStoreFlags, verifyUploadsStoreCommand } from './uploads-store.ts';

interface VerifyFlags extends FormsFlags, UploadsStoreFlags {
  from: string;
  to?: string;
  only?: string[];
  defaultUser?: string;
  report?: string;
  batch: number;
  jobs: number;
  maxFileSize: number;
  maxDepth: number;
}

const EXAMPLES = `
Examples:
  DATABASE_URL=embedded pgferry verify --from ./sample
  pgferry verify --from ./data --to postgres://app@db/app --report verify.jsonl

Every source record is hashed again and compared with a hash computed from the
database rows. Reported: missing (in the files only), different (content
differs; the first difference is named), extra (in the database only) and
unreadable (a source file that cannot be checked).
Exit codes: 0 identical, 1 anything differs, 2 usage or configuration error.`;

export function register(program: Command): void {
  const command = program
    .command('verify')
    .description('Prove the database holds exactly what the JSON files hold (canonical content hash per record)')
    .option('--from <dir>', "the app's data directory (holds conversations/ and usage/); required unless --uploads-store")
    .option('--to <url>', 'PostgreSQL URL, or "embedded" (default: DATABASE_URL)')
    .option('--only <kinds>', `verify only these kinds: ${kindNames().join(',')}`, parseKinds)
    .option('--default-user <id>', 'as given to import, for the single-user layout', parseUser)
    .option('--report <file>', 'write every difference as JSON Lines {kind, file, record, problem, reason}')
    .option('--batch <n>', 'records compared per query', parseCount('--batch', 1, 100_000), 500)
    .option('--jobs <n>', 'batches compared at once', parseCount('--jobs', 1, 32), 2);
  addUploadsStoreOptions(command, 'verify');
  addFormsOptions(addLimitOptions(command))
    .addHelpText('after', EXAMPLES)
    .action(action((flags: VerifyFlags) => verifySources(flags)));
}

/** `--from DIR`, `--uploads-store FILE`, or both in turn. */
async function verifySources(flags: VerifyFlags): Promise<number> {
  if (flags.from === undefined && flags.uploadsStore === undefined)
    throw new PgFerryError('CONFIG_ERROR', 'verify: expected --from DIR, --uploads-store FILE, or both');
  const code = flags.from === undefined ? EXIT.OK : await verifyCommand(flags);
  if (flags.uploadsStore === undefined) return code;
  return Math.max(code, await verifyUploadsStoreCommand(flags));
}

async function verifyCommand(flags: VerifyFlags): Promise<number> {
  const { root, ctx, url } = await prepareTransfer(flags);
  const target = await openTarget({ url, config: ctx.config, logger: ctx.logger, connections: 1, migrate: false });
  const progress = new ProgressDisplay({ label: 'verify', tty: process.stderr.isTTY === true, logger: ctx.logger });
  const startedAt = new Date();
  const run = await startRun(target.db, { command: 'verify', source: root, reportPath: absolute(flags.report) }, ctx.logger);
  try {
    const { summary, problems: report } = await runInWorker(
      {
        command: 'verify',
        url: target.url,
        root,
        ...kindJob(flags.only),
        defaultUser: flags.defaultUser,
        batchSize: flags.batch,
        jobs: flags.jobs,
        config: ctx.config,
        reportFile: flags.report,
        limits: { maxFileSize: flags.maxFileSize, maxDepth: flags.maxDepth },
        forms: formsSettings(flags),
      },
      {
        onStart: (totals) => progress.start(totals.records, totals.bytes),
        onProgress: (state) => {
          progress.update(state);
          run.progress(state.records, state.totalRecords);
        },
      },
    );
    await run.finish({ exitCode: summary.ok ? EXIT.OK : EXIT.CHECK_FAILED, counts: summary.kinds, problems: report });
    progress.stop();
    // For `pgferry cutover status` ("verify is 3 days old").
    await recordVerifyRun(target.db, {
      source: root,
      kinds: Object.keys(summary.kinds),
      clean: summary.ok,
      summary: summary.kinds,
      startedAt,
    });
    // A kind with nothing on either side is left out unless --only names it.
    const shown = Object.entries(summary.kinds).filter(([kind, c]) => flags.only?.includes(kind) || Object.values(c).some((n) => n > 0));
    const rows = shown.map(([kind, c]) => [kind, c.source, c.matched, c.missing, c.different, c.extra, c.unreadable]);
    ctx.out('');
    ctx.out('verify summary');
    ctx.out(formatTable(['kind', 'source', 'identical', 'missing', 'different', 'extra', 'unreadable'], rows));
    ctx.out(
      `${summary.messages.toLocaleString('en-US')} messages compared, ${(summary.bytes / 1_048_576).toFixed(1)} MB read in ${seconds(summary.elapsedMs)} ` +
        `(${perSecond(summary.messages, summary.elapsedMs)} messages/s); peak RSS ${peakRssMb()} MB`,
    );
    if (summary.ok) {
      ctx.out('OK: the database holds exactly what the files hold.');
      return EXIT.OK;
    }
    ctx.out('');
    ctx.out(`DIFFERENT: ${report.errors} problems${flags.report ? ` — all in ${path.resolve(flags.report)}` : ''}:`);
    for (const line of report.first)
      ctx.out(
        `  ${line.problem ?? 'problem'} ${line.kind} ${terminalSafe(line.record ?? '-')}${line.file ? ` (${terminalSafe(line.file)})` : ''}: ${terminalSafe(line.reason)}`,
      );
    if (report.errors > report.first.length) ctx.out(flags.report ? '  …' : '  … (pass --report FILE for the full list)');
    return EXIT.CHECK_FAILED;
  } catch (error) {
    await run.fail(error);
    throw error;
  } finally {
    progress.stop();
    await target.close();
  }
}
