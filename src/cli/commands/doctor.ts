import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { describeConfig } from '../../config.ts';
import { redactSecrets } from '../../log.ts';
import { checkPgDumpVersion, findPgDump, serverVersion } from '../../schema/backup.ts';
import type { MigrationStatus } from '../../schema/migrator.ts';
import { verifySchema } from '../../schema/verify.ts';
import { action, type CommandContext, EXIT } from '../context.ts';
import { type ConnectionFlags, contextFor, type DbSession, withSession } from './db.ts';

/**
 * `pgferry doctor`: one line per check, ✓ ok / ✗ wrong / ! worth knowing /
 * – not applicable. Exit 1 when any check is ✗. Warnings (for example no
 * pg_dump, which only `--backup` needs) do not fail the run.
 */

type CheckStatus = 'ok' | 'fail' | 'warn' | 'skip';

interface CheckResult {
  name: string;
  status: CheckStatus;
  detail: string;
}

interface DoctorFlags extends ConnectionFlags {
  verify: boolean;
}

const SYMBOL: Record<CheckStatus, string> = { ok: '✓', fail: '✗', warn: '!', skip: '–' };

const messageOf = (error: unknown) => redactSecrets(error instanceof Error ? error.message : String(error));

async function checkDataDir(dir: string): Promise<CheckResult> {
  const probe = path.join(dir, `.pgferry-doctor-${process.pid}`);
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(probe, 'ok');
    await rm(probe, { force: true });
    return { name: 'data dir', status: 'ok', detail: `${dir} is writable` };
  } catch (error) {
    return {
      name: 'data dir',
      status: 'fail',
      detail: `DATA_DIR ${dir} is not writable (${messageOf(error)}); point DATA_DIR at a writable directory`,
    };
  }
}

function checkSchema(status: MigrationStatus, autoMigrate: boolean): CheckResult {
  if (status.problems.length > 0) return { name: 'schema', status: 'fail', detail: status.problems.join(' ') };
  const where = `version ${status.current} of ${status.latest}`;
  if (status.pending.length === 0) return { name: 'schema', status: 'ok', detail: `${where}, up to date` };
  const pending = `${status.pending.length} migration(s) pending`;
  // With AUTO_MIGRATE on, the store applies them itself when it opens: nothing is wrong yet.
  return autoMigrate
    ? {
        name: 'schema',
        status: 'warn',
        detail: `${where}; ${pending}, applied when a store opens (AUTO_MIGRATE=true) or by "pgferry db up"`,
      }
    : { name: 'schema', status: 'fail', detail: `${where}; ${pending} and AUTO_MIGRATE=false: run "pgferry db up"` };
}

async function checkVerify(session: DbSession): Promise<CheckResult> {
  try {
    const result = await verifySchema(session.url, session.migrator, { logger: session.ctx.logger });
    if (result.ok) return { name: 'schema verify', status: 'ok', detail: `live schema matches migrations 1..${result.version}` };
    const lines = [...result.missing.map((l) => `missing ${l}`), ...result.extra.map((l) => `extra ${l}`)];
    const shown = lines.slice(0, 5).join('; ') + (lines.length > 5 ? `; … ${lines.length - 5} more` : '');
    return { name: 'schema verify', status: 'fail', detail: `${lines.length} difference(s): ${shown} (details: pgferry db verify)` };
  } catch (error) {
    // Typically a role without CREATEDB: the check could not run, which is not a fault of the schema.
    return { name: 'schema verify', status: 'warn', detail: `not checked: ${messageOf(error)}` };
  }
}

async function checkPgDump(ctx: CommandContext | undefined, url: string | undefined): Promise<CheckResult> {
  const name = 'pg_dump';
  try {
    const pgDump = await findPgDump(ctx?.env.PG_DUMP || undefined);
    if (url !== undefined) checkPgDumpVersion(pgDump, await serverVersion(url));
    return { name, status: 'ok', detail: `pg_dump ${pgDump.version} available for --backup` };
  } catch (error) {
    return { name, status: 'warn', detail: `${messageOf(error)} (only --backup needs it)` };
  }
}

async function checkDatabase(ctx: CommandContext, flags: DoctorFlags, report: (r: CheckResult) => void): Promise<void> {
  try {
    await withSession(ctx, async (session) => {
      const [row] = await session.db.sql<{ version: string }[]>`select current_setting('server_version') as version`;
      report({ name: 'database', status: 'ok', detail: `connected to ${session.db.displayUrl} (PostgreSQL ${row?.version})` });
      const status = await session.migrator.status();
      report(checkSchema(status, ctx.config.autoMigrate));
      if (!flags.verify) report({ name: 'schema verify', status: 'skip', detail: 'skipped (--no-verify)' });
      else if (status.problems.length > 0)
        report({ name: 'schema verify', status: 'skip', detail: 'skipped: fix the schema problems first' });
      else report(await checkVerify(session));
      report(await checkPgDump(ctx, session.url));
    });
  } catch (error) {
    report({ name: 'database', status: 'fail', detail: messageOf(error) });
  }
}

async function cmdDoctor(flags: DoctorFlags): Promise<number> {
  const results: CheckResult[] = [];
  const report = (result: CheckResult) => {
    results.push(result);
    process.stdout.write(`${SYMBOL[result.status]} ${result.name}: ${result.detail}\n`);
  };
  let ctx: CommandContext | undefined;
  try {
    ctx = contextFor(flags);
    const shown = describeConfig(ctx.config);
    report({ name: 'config', status: 'ok', detail: `storage ${shown.storageMode}, database ${shown.database}, auth ${shown.auth}` });
  } catch (error) {
    report({ name: 'config', status: 'fail', detail: messageOf(error) });
  }
  report(await checkDataDir(ctx?.config.dataDir ?? path.resolve(process.env.DATA_DIR || './data')));
  if (!ctx) {
    report({ name: 'database', status: 'skip', detail: 'skipped: the configuration is invalid' });
    report(await checkPgDump(undefined, undefined));
  } else if (!ctx.config.databaseUrl) {
    report({ name: 'database', status: 'skip', detail: 'not configured (DATABASE_URL unset): JSON files in DATA_DIR' });
    report(await checkPgDump(ctx, undefined));
  } else {
    await checkDatabase(ctx, flags, report);
  }
  const failed = results.filter((r) => r.status === 'fail').length;
  process.stdout.write(failed === 0 ? 'all checks passed\n' : `${failed} check(s) failed\n`);
  return failed === 0 ? EXIT.OK : EXIT.CHECK_FAILED;
}

export function register(program: Command): void {
  program
    .command('doctor')
    .description('Check configuration, DATA_DIR, database connectivity, schema state (pending, problems, verify) and pg_dump.')
    .option('--database-url <url>', 'PostgreSQL URL or "embedded" (overrides DATABASE_URL)')
    .option('--no-verify', 'skip the schema verify check (it needs CREATEDB and builds a scratch database)')
    .addHelpText(
      'after',
      `
Output: one line per check; ✓ ok, ✗ wrong, ! worth knowing (does not fail), – not applicable.

Examples:
  $ pgferry doctor
  $ DATABASE_URL=postgres://app:secret@db.internal:5432/app pgferry doctor
  $ DATABASE_URL=embedded pgferry doctor --no-verify

Exit codes: 0 every check passed, 1 a check failed (✗), 2 usage error.`,
    )
    .action(action((flags: DoctorFlags) => cmdDoctor(flags)));
}
