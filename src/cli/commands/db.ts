import { type Command, InvalidArgumentError } from 'commander';
import { openDatabase } from '../../db/connect.ts';
import type { Database } from '../../db/database.ts';
import { PgFerryError } from '../../errors.ts';
import { backupDatabase } from '../../schema/backup.ts';
import { type MigrationStatus, Migrator, type PlannedStep } from '../../schema/migrator.ts';
import { type VerifyResult, verifySchema } from '../../schema/verify.ts';
import { action, type CommandContext, EXIT, makeContext } from '../context.ts';

/**
 * `pgferry db status|up|down|plan|verify` (DESIGN section 6). Thin over
 * Migrator, verifySchema and backupDatabase: this file parses flags, opens
 * and closes the database (starting embedded PostgreSQL for
 * DATABASE_URL=embedded) and prints for a person on stdout.
 */

export interface ConnectionFlags {
  databaseUrl?: string;
}

interface DbFlags extends ConnectionFlags {
  to?: number;
  backup?: string;
  yes?: boolean;
  json?: boolean;
  down?: boolean;
}

/** Config from the environment, with --database-url taking DATABASE_URL's place (so it is validated the same way). */
export function contextFor(flags: ConnectionFlags): CommandContext {
  const env = flags.databaseUrl === undefined ? process.env : { ...process.env, DATABASE_URL: flags.databaseUrl };
  return makeContext({}, env);
}

export interface DbSession {
  ctx: CommandContext;
  db: Database;
  /** The resolved connection URL (an embedded server's real address). */
  url: string;
  migrator: Migrator;
}

export const MISSING_DATABASE_URL =
  'DATABASE_URL is not set, and this command needs PostgreSQL. Set DATABASE_URL to a connection string such as postgres://app@db.internal:5432/app (password included after the user name), ' +
  'or DATABASE_URL=embedded for a local server under DATA_DIR/postgres, or pass --database-url URL.';

/** Connect (starting embedded PostgreSQL if asked), run `work`, and always disconnect and stop what was started. */
export async function withSession<T>(ctx: CommandContext, work: (session: DbSession) => Promise<T>): Promise<T> {
  const configured = ctx.config.databaseUrl;
  if (!configured) throw new PgFerryError('CONFIG_ERROR', MISSING_DATABASE_URL, { variable: 'DATABASE_URL' });
  // The admin role: migrations may legitimately run for minutes (index builds), so no statement_timeout.
  const { db, url, close } = await openDatabase(ctx.config, { role: 'admin', logger: ctx.logger, connections: 3 });
  try {
    return await work({ ctx, db, url, migrator: new Migrator(db.sql, { logger: ctx.logger }) });
  } finally {
    await close();
  }
}

function parseVersion(value: string): number {
  const version = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(version)) throw new InvalidArgumentError('expected a migration number (0, 1, 2, …)');
  return version;
}

const label = (version: number, name: string) => `${String(version).padStart(4, '0')} ${name}`;

function printStatus(ctx: CommandContext, status: MigrationStatus, where: string): void {
  const state =
    status.problems.length > 0 ? 'PROBLEMS (see below)' : status.pending.length > 0 ? `${status.pending.length} pending` : 'up to date';
  ctx.out(`database  ${where}`);
  ctx.out(`version   ${status.current} of ${status.latest} (${state})`);
  for (const row of status.applied) {
    ctx.out(`  applied  ${label(row.version, row.name).padEnd(28)} ${row.appliedAt.toISOString()}  (${row.durationMs} ms)`);
  }
  for (const migration of status.pending) ctx.out(`  pending  ${label(migration.version, migration.name)}`);
  if (status.problems.length > 0) {
    ctx.out('problems:');
    for (const problem of status.problems) ctx.out(`  ✗ ${problem}`);
  }
}

function statusJson(status: MigrationStatus, where: string) {
  return {
    database: where,
    current: status.current,
    latest: status.latest,
    upToDate: status.pending.length === 0 && status.problems.length === 0,
    applied: status.applied.map((a) => ({
      version: a.version,
      name: a.name,
      appliedAt: a.appliedAt.toISOString(),
      durationMs: a.durationMs,
    })),
    pending: status.pending.map((m) => ({ version: m.version, name: m.name })),
    problems: status.problems,
  };
}

async function cmdStatus(flags: DbFlags): Promise<number> {
  return withSession(contextFor(flags), async ({ ctx, db, migrator }) => {
    const status = await migrator.status();
    if (flags.json) ctx.out(JSON.stringify(statusJson(status, db.displayUrl), null, 2));
    else printStatus(ctx, status, db.displayUrl);
    return status.problems.length > 0 ? EXIT.CHECK_FAILED : EXIT.OK;
  });
}

async function backupFirst(session: DbSession, file: string | undefined): Promise<void> {
  if (file === undefined) return;
  const result = await backupDatabase(session.url, file, session.ctx.logger, { pgDump: session.ctx.env.PG_DUMP || undefined });
  session.ctx.out(`backup    ${result.file} (${result.bytes} bytes, pg_dump ${result.pgDumpVersion})`);
}

async function printApplied(session: DbSession, versions: number[], verb: string): Promise<void> {
  const status = await session.migrator.status();
  const byVersion = new Map(status.applied.map((a) => [a.version, a]));
  for (const version of versions) {
    const migration = session.migrator.migrations.find((m) => m.version === version)!;
    const took = byVersion.get(version);
    session.ctx.out(`${verb} ${label(version, migration.name)}${took ? ` (${took.durationMs} ms)` : ''}`);
  }
  session.ctx.out(`schema version is now ${status.current} of ${status.latest}`);
}

async function cmdUp(flags: DbFlags): Promise<number> {
  return withSession(contextFor(flags), async (session) => {
    await backupFirst(session, flags.backup);
    const applied = await session.migrator.up({ to: flags.to });
    await printApplied(session, applied, 'applied ');
    return EXIT.OK;
  });
}

export const DOWN_NEEDS_YES =
  'pgferry db down reverts migrations, and their down files DROP tables together with every row in them. Nothing was changed. ' +
  'See the SQL first with "pgferry db plan --down [--to N]", then confirm with "pgferry db down --yes [--to N]" ' +
  '(add --backup FILE to keep a pg_dump copy first).';

async function cmdDown(flags: DbFlags): Promise<number> {
  // Checked before connecting: without consent nothing may happen, not even a backup.
  if (!flags.yes) throw new PgFerryError('INVALID_INPUT', DOWN_NEEDS_YES);
  return withSession(contextFor(flags), async (session) => {
    await backupFirst(session, flags.backup);
    const reverted = await session.migrator.down({ to: flags.to });
    if (reverted.length === 0) session.ctx.out('nothing to revert');
    await printApplied(session, reverted, 'reverted');
    return EXIT.OK;
  });
}

function printPlan(ctx: CommandContext, steps: PlannedStep[], current: number): void {
  if (steps.length === 0) {
    ctx.out(`-- nothing to do: the database is at version ${current}`);
    return;
  }
  ctx.out(`-- pgferry db plan: the database is at version ${current}; ${steps.length} step(s). Nothing below has been run.`);
  for (const step of steps) {
    const how = step.transactional ? 'runs in one transaction with its tracking row' : 'no-transaction: runs statement by statement';
    ctx.out('');
    ctx.out(`-- ${String(step.version).padStart(4, '0')}_${step.name}.${step.direction}.sql (${how})`);
    ctx.out(step.sql.trimEnd());
  }
}

async function cmdPlan(flags: DbFlags): Promise<number> {
  return withSession(contextFor(flags), async ({ ctx, migrator }) => {
    const steps = await migrator.plan({ direction: flags.down ? 'down' : 'up', to: flags.to });
    printPlan(ctx, steps, (await migrator.status()).current);
    return EXIT.OK;
  });
}

function printVerify(ctx: CommandContext, result: VerifyResult): void {
  if (result.ok) {
    ctx.out(`✓ the live schema matches what migrations 1..${result.version} produce`);
    return;
  }
  ctx.out(`✗ the live schema differs from what migrations 1..${result.version} produce`);
  if (result.missing.length > 0) ctx.out('missing (the migrations create it, the database lacks it):');
  for (const line of result.missing) ctx.out(`  - ${line}`);
  if (result.extra.length > 0) ctx.out('extra (in the database, not created by the migrations):');
  for (const line of result.extra) ctx.out(`  + ${line}`);
  ctx.out('Put intended changes in a new migration; undo accidental ones by hand, then run verify again.');
}

async function cmdVerify(flags: DbFlags): Promise<number> {
  return withSession(contextFor(flags), async ({ ctx, url, migrator }) => {
    const result = await verifySchema(url, migrator, { logger: ctx.logger });
    if (flags.json) ctx.out(JSON.stringify(result, null, 2));
    else printVerify(ctx, result);
    return result.ok ? EXIT.OK : EXIT.CHECK_FAILED;
  });
}

const EXIT_CODES = 'Exit codes: 0 ok, 1 a check failed or a migration was refused, 2 usage or configuration error.';

const DB_HELP = `
Examples:
  $ DATABASE_URL=postgres://app:secret@db.internal:5432/app pgferry db status
  $ DATABASE_URL=embedded pgferry db up          # local PostgreSQL under DATA_DIR/postgres
  $ pgferry db plan                              # print the SQL "up" would run
  $ pgferry db up --backup backups/pre-upgrade.dump
  $ pgferry db verify                            # live schema == what the migrations produce?
  $ pgferry db down --to 0 --yes                 # drops every pgferry table and its rows

Environment: DATABASE_URL (or --database-url; prefer the variable, flags are visible in ps),
DATA_DIR (cluster of DATABASE_URL=embedded), PG_DUMP (pg_dump for --backup), LOG_LEVEL.
Human output goes to stdout; JSON logs (secrets redacted) to stderr.
${EXIT_CODES}
See docs/migrations.md.`;

function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((line) => `  $ ${line}`).join('\n')}\n\n${EXIT_CODES}`;
}

function subcommand(db: Command, name: string, description: string): Command {
  return db.command(name).description(description).option('--database-url <url>', 'PostgreSQL URL or "embedded" (overrides DATABASE_URL)');
}

export function register(program: Command): void {
  const db = program
    .command('db')
    .description('Schema migrations: status, up, down, plan, verify (numbered SQL files, advisory-locked, one transaction each).')
    .addHelpText('after', DB_HELP);

  subcommand(db, 'status', 'Show the schema version, applied and pending migrations, and any problem that would stop "up".')
    .option('--json', 'print the status as JSON')
    .addHelpText(
      'after',
      examples('pgferry db status', 'pgferry db status --json | jq .pending', 'DATABASE_URL=embedded pgferry db status'),
    )
    .action(action((flags: DbFlags) => cmdStatus(flags)));

  subcommand(db, 'up', 'Apply pending migrations (all, or up to --to N). Safe to run from several replicas at once.')
    .option('--to <n>', 'stop at migration N', parseVersion)
    .option('--backup <file>', 'run pg_dump --format=custom to FILE first; stop if it fails')
    .addHelpText(
      'after',
      examples(
        'pgferry db up',
        'pgferry db up --to 1',
        'pgferry db up --backup backups/$(date +%F).dump',
        'DATABASE_URL=embedded pgferry db up',
      ),
    )
    .action(action((flags: DbFlags) => cmdUp(flags)));

  subcommand(db, 'down', 'Revert migrations (one step, or down to --to N). Drops tables and their data: needs --yes.')
    .option('--to <n>', 'revert down to migration N (0 = everything)', parseVersion)
    .option('--yes', 'confirm: the down files drop tables with their rows')
    .option('--backup <file>', 'run pg_dump --format=custom to FILE first; stop if it fails')
    .addHelpText(
      'after',
      examples(
        'pgferry db plan --down --to 0      # read what would be dropped',
        'pgferry db down --yes',
        'pgferry db down --to 0 --yes --backup backups/before-down.dump',
      ),
    )
    .action(action((flags: DbFlags) => cmdDown(flags)));

  subcommand(db, 'plan', 'Print the SQL that "up" (or "down" with --down) would run, without running anything.')
    .option('--to <n>', 'plan up (or down) to migration N', parseVersion)
    .option('--down', 'plan a down migration instead of up')
    .addHelpText('after', examples('pgferry db plan', 'pgferry db plan --to 1 > upgrade.sql', 'pgferry db plan --down --to 0'))
    .action(action((flags: DbFlags) => cmdPlan(flags)));

  subcommand(
    db,
    'verify',
    'Compare the live schema with what the applied migrations produce (builds it in a scratch database; needs CREATEDB).',
  )
    .option('--json', 'print the result as JSON')
    .addHelpText('after', examples('pgferry db verify', 'pgferry db verify --json'))
    .action(action((flags: DbFlags) => cmdVerify(flags)));
}
