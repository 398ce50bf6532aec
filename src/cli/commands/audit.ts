import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { modeOf } from '../../config.ts';
import { openDatabase } from '../../db/connect.ts';
import { invalidInput, PgFerryError } from '../../errors.ts';
import { removeFile } from '../../store/json/files.ts';
import { action, type CommandContext, EXIT, makeContext } from '../context.ts';

const EXAMPLES = `
Examples:
  pgferry audit purge --before 2025-01-01
  pgferry audit purge --before 2025-01-01T00:00:00Z --json

The audit log (seed 002) is append-only: PostgreSQL refuses UPDATE, DELETE
and TRUNCATE on audit_logs. This is the operator's retention purge: on
PostgreSQL it calls pgferry_audit_purge(before) (usable from psql too); on
JSON files it removes the daily files DATA_DIR/audit/<day>.jsonl of the days
wholly before --before. Which backend: STORAGE_AUDIT, else STORAGE_MODE.`;

export function register(program: Command): void {
  const audit = program.command('audit').description("Seed 002's append-only audit log: the operator's retention purge");
  audit
    .command('purge')
    .description('Remove audit entries older than a date (operators only; the log is otherwise append-only)')
    .requiredOption('--before <date>', 'ISO date or instant; entries before it are removed')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', EXAMPLES)
    .action(action((flags: { before: string; json?: boolean }) => purgeCommand(flags)));
}

function parseBefore(value: string): Date {
  const time = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(time)) {
    throw invalidInput(`--before: expected an ISO date such as 2025-01-01, got ${JSON.stringify(value.slice(0, 40))}`);
  }
  return new Date(time);
}

async function purgeCommand(flags: { before: string; json?: boolean }): Promise<number> {
  const ctx = makeContext();
  const before = parseBefore(flags.before);
  const backend = modeOf(ctx.config, 'audit') === 'json' || !ctx.config.databaseUrl ? 'json' : 'postgres';
  const purged = backend === 'json' ? await purgeJson(ctx, before) : await purgePostgres(ctx, before);
  const result = { backend, before: before.toISOString(), purged };
  ctx.out(
    flags.json
      ? JSON.stringify(result)
      : `purged ${purged} audit ${backend === 'json' ? 'day file(s)' : 'entries'} before ${result.before}`,
  );
  return EXIT.OK;
}

async function purgePostgres(ctx: CommandContext, before: Date): Promise<number> {
  const { db, stopServer } = await openDatabase(ctx.config, { role: 'admin', logger: ctx.logger });
  try {
    const [row] = await db.run('audit.purge', (sql) => sql<{ purged: number }[]>`select pgferry_audit_purge(${before}) as purged`);
    return Number(row?.purged ?? 0);
  } catch (error) {
    if ((error as { code?: string }).code === '42883') {
      throw new PgFerryError('MIGRATION_ERROR', 'pgferry_audit_purge is missing: run `pgferry db migrate` first');
    }
    throw error;
  } finally {
    await db.close();
    await stopServer();
  }
}

/** Whole days before `before` (a day file holds the UTC day's entries). */
async function purgeJson(ctx: CommandContext, before: Date): Promise<number> {
  const dir = path.join(ctx.config.dataDir, 'audit');
  const names = await readdir(dir).catch(() => [] as string[]);
  const lastWholeDay = new Date(before.getTime() - 86_400_000).toISOString().slice(0, 10);
  let removed = 0;
  for (const name of names) {
    const day = /^(\d{4}-\d{2}-\d{2})\.jsonl$/.exec(name)?.[1];
    if (day === undefined || day > lastWholeDay) continue;
    // A day ends at the next midnight: it is wholly before `before` only when that midnight is <= before.
    if (Date.parse(`${day}T00:00:00Z`) + 86_400_000 > before.getTime()) continue;
    await removeFile(path.join(dir, name));
    removed++;
  }
  return removed;
}
