import path from 'node:path';
import type { Command } from 'commander';
import type { Config } from '../../config.ts';
import { PgFerryError } from '../../errors.ts';
import { localStore } from '../../transfer/files/object-store.ts';
import { importUploadsStore, verifyUploadsStore } from '../../transfer/kinds/uploads/index.ts';
import { ProblemReport } from '../../transfer/report.ts';
import { formatTable, terminalSafe } from '../../transfer/summary.ts';
import { checkTargetUrl, lockImport, openTarget } from '../../transfer/target.ts';
import { EXIT, makeContext } from '../context.ts';

/**
 * `pgferry import --uploads-store [FILE]` and `pgferry verify --uploads-store [FILE]`:
 * seed 000's upload store (src/transfer/kinds/uploads/). Called by import.ts
 * and verify.ts next to (or instead of) the `--from DIR` transfer.
 */

export interface UploadsStoreFlags {
  /** The file, or `true` for `--uploads-store` without one (then USER_UPLOADS_STORE). */
  uploadsStore?: string | true;
  filesRoot?: string;
  to?: string;
  dryRun?: boolean;
  report?: string;
}

export function addUploadsStoreOptions(command: Command, verb: 'import' | 'verify'): Command {
  command.option('--uploads-store [file]', `${verb} seed 000's user_uploads_store.json (default: USER_UPLOADS_STORE)`);
  if (verb === 'import')
    command.option(
      '--files-root <dir>',
      "with --uploads-store: the app's directory saved_path is relative to; bytes are checked and linked into DATA_DIR/files",
    );
  return command;
}

function storePath(flags: UploadsStoreFlags, config: Config): string {
  const file = flags.uploadsStore === true ? config.uploadsStorePath : flags.uploadsStore;
  if (!file) throw new PgFerryError('CONFIG_ERROR', '--uploads-store: no file given and USER_UPLOADS_STORE is not set');
  return path.resolve(file);
}

function context(flags: UploadsStoreFlags) {
  const ctx = makeContext(flags.to === undefined ? {} : { databaseUrl: flags.to });
  return { ctx, url: checkTargetUrl(ctx.config.databaseUrl), file: storePath(flags, ctx.config) };
}

function printProblems(out: (line: string) => void, report: ProblemReport, file: string | undefined): void {
  if (report.errors + report.warnings === 0) return;
  out(`${report.errors} problems, ${report.warnings} warnings${file ? ` — all in ${path.resolve(file)}` : ''}:`);
  for (const line of report.first)
    out(
      `  ${line.problem ?? (line.severity === 'error' ? 'error  ' : 'warning')} ${terminalSafe(line.file ?? '-')} [${terminalSafe(line.record ?? '-')}]: ${terminalSafe(line.reason)}`,
    );
  if (report.errors + report.warnings > report.first.length) out(file ? '  …' : '  … (pass --report FILE for the full list)');
}

export async function importUploadsStoreCommand(flags: UploadsStoreFlags): Promise<number> {
  const { ctx, url, file } = context(flags);
  const target = await openTarget({ url, config: ctx.config, logger: ctx.logger, connections: 2, migrate: !flags.dryRun });
  const report = new ProblemReport(flags.report);
  let unlock: (() => Promise<void>) | undefined;
  try {
    if (!flags.dryRun) unlock = await lockImport(target.db);
    const summary = await importUploadsStore({
      db: target.db,
      file,
      report,
      dryRun: flags.dryRun,
      filesRoot: flags.filesRoot === undefined ? undefined : path.resolve(flags.filesRoot),
      objects: flags.filesRoot === undefined ? undefined : localStore(ctx.config.dataDir),
    });
    await report.close();
    ctx.out('');
    ctx.out(`upload store import${flags.dryRun ? ' (dry run: nothing written)' : ''}: ${terminalSafe(file)}`);
    ctx.out(
      formatTable(
        ['kind', 'entries', 'inserted', 'updated', 'unchanged', 'rejected', 'warnings', 'users', 'no object', 'linked', 'missing bytes'],
        [
          [
            'uploads',
            summary.entries,
            summary.inserted,
            summary.updated,
            summary.unchanged,
            summary.rejected,
            summary.warnings,
            summary.users,
            summary.withoutObject,
            summary.linked,
            summary.missingObjects,
          ],
        ],
      ),
    );
    printProblems(ctx.out, report, flags.report);
    return summary.rejected > 0 ? EXIT.CHECK_FAILED : EXIT.OK;
  } finally {
    await report.close().catch(() => {});
    await unlock?.();
    await target.close();
  }
}

export async function verifyUploadsStoreCommand(flags: UploadsStoreFlags): Promise<number> {
  const { ctx, url, file } = context(flags);
  const target = await openTarget({ url, config: ctx.config, logger: ctx.logger, connections: 1, migrate: false });
  const report = new ProblemReport(flags.report);
  try {
    const s = await verifyUploadsStore({ db: target.db, file, report });
    await report.close();
    ctx.out('');
    ctx.out(`upload store verify: ${terminalSafe(file)}`);
    ctx.out(
      formatTable(
        ['kind', 'source', 'identical', 'missing', 'different', 'extra', 'unreadable', 'standards differ'],
        [['uploads', s.source, s.matched, s.missing, s.different, s.extra, s.unreadable, s.standardsDifferent]],
      ),
    );
    printProblems(ctx.out, report, flags.report);
    if (s.ok) ctx.out('OK: the database holds every readable entry of the upload store, unchanged.');
    return s.ok ? EXIT.OK : EXIT.CHECK_FAILED;
  } finally {
    await report.close().catch(() => {});
    await target.close();
  }
}
