import type { Command } from 'commander';
import { type CutoverStatus, cutoverStatus } from '../../cutover/status.ts';
import { openDatabase } from '../../db/connect.ts';
import { formatTable, terminalSafe } from '../../transfer/summary.ts';
import { action, EXIT, makeContext } from '../context.ts';

interface StatusFlags {
  json?: boolean;
  dataDir?: string;
}

const EXAMPLES = `
Examples:
  STORAGE_MODE=dual DATABASE_URL=postgres://app@db/app DATA_DIR=./data pgferry cutover status
  pgferry cutover status --json | jq .advice

Reads DATA_DIR's journal and shadow-read counts and PostgreSQL's verify and
sync records; run it with the app's environment (STORAGE_MODE, STORAGE_<NAME>).
Exit codes: 0 nothing holds the next step back, 1 something does (journal not
empty, shadow mismatches, PostgreSQL unreachable), 2 usage or configuration error.`;

export function register(program: Command): void {
  const cutover = program.command('cutover').description('The zero-downtime move from JSON files to PostgreSQL (docs/migrating.md)');
  cutover
    .command('status')
    .description('Phase per repository, journal depth, sync lag, shadow-read mismatches, last verify, and the next step')
    .option('--json', 'print the status as JSON')
    .option('--data-dir <dir>', 'the app’s DATA_DIR (default: DATA_DIR)')
    .addHelpText('after', EXAMPLES)
    .action(action((flags: StatusFlags) => statusCommand(flags)));
}

async function statusCommand(flags: StatusFlags): Promise<number> {
  const ctx = makeContext(flags.dataDir ? { dataDir: flags.dataDir } : {});
  const opened = ctx.config.databaseUrl
    ? await openDatabase(
        { ...ctx.config, pool: { ...ctx.config.pool, connectTimeoutSeconds: 3 } },
        { role: 'admin', logger: ctx.logger },
      ).catch(() => undefined)
    : undefined;
  let status: CutoverStatus;
  try {
    status = await cutoverStatus(ctx.config, opened?.db);
    if (ctx.config.databaseUrl && !opened) status.databaseError ??= 'PostgreSQL did not answer';
  } finally {
    await opened?.close();
  }
  if (flags.json) ctx.out(JSON.stringify(status, null, 2));
  else printStatus(status, ctx.out);
  const heldBack =
    status.journal.depth > 0 ||
    status.repositories.some((r) => (r.shadow?.mismatches ?? 0) > 0) ||
    (status.databaseError !== null && ctx.config.databaseUrl !== undefined);
  return heldBack ? EXIT.CHECK_FAILED : EXIT.OK;
}

function printStatus(status: CutoverStatus, out: (line: string) => void): void {
  out(`cutover status (STORAGE_MODE=${status.storageMode})`);
  out(
    formatTable(
      ['repository', 'phase', 'shadow reads', 'mismatches'],
      status.repositories.map((r) => [r.name, r.phase, r.shadow?.compared ?? 0, r.shadow?.mismatches ?? 0]),
    ),
  );
  out(`journal: ${status.journal.depth} pending${status.journal.oldestAt ? ` (oldest ${status.journal.oldestAt})` : ''}`);
  out(`sync: ${status.sync === null ? 'no sync_state (pgferry sync --follow not run)' : terminalSafe(JSON.stringify(status.sync))}`);
  const verify = status.lastVerify;
  out(
    `last verify: ${verify ? `${verify.clean ? 'clean' : 'DIFFERENT'}, ${verify.ageHours} h ago (${terminalSafe(verify.source)})` : 'none recorded'}`,
  );
  if (status.databaseError) out(`database: ${terminalSafe(status.databaseError)}`);
  out('');
  out('next:');
  for (const line of status.advice) out(`  - ${terminalSafe(line)}`);
}
