import type { Command } from 'commander';
import { collectSections, type SectionResult } from '../../admin/page.ts';
import { SECTIONS } from '../../admin/sections/index.ts';
import type { Database } from '../../db/database.ts';
import { PgFerryError } from '../../errors.ts';
import { terminalSafe } from '../../transfer/summary.ts';
import { action, type CommandContext, EXIT } from '../context.ts';
import { contextFor, withSession } from './db.ts';

/**
 * `pgferry status`: the admin page on one screen — configuration, cutover
 * and next step, last runs, file moves, database, quotas. Each section prints
 * its own lines (src/admin/sections/*.ts `text`).
 */

interface StatusFlags {
  databaseUrl?: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('status')
    .description('One screen: backend and modes, database and schema, cutover step, last runs, file moves, quotas')
    .option('--database-url <url>', 'PostgreSQL URL, or "embedded" (default: DATABASE_URL)')
    .option('--json', 'print the facts as JSON (the same as GET /admin/api/overview)')
    .addHelpText(
      'after',
      '\nExamples:\n  pgferry status\n  DATABASE_URL=embedded pgferry status --json\n\nExit codes: 0 shown, 1 the database is unreachable.',
    )
    .action(action((flags: StatusFlags) => statusCommand(flags)));
}

async function statusCommand(flags: StatusFlags): Promise<number> {
  const ctx = contextFor(flags);
  if (!ctx.config.databaseUrl) return print(ctx, flags, await collect(ctx, undefined));
  try {
    return await withSession(ctx, async ({ db }) => print(ctx, flags, await collect(ctx, db)));
  } catch (error) {
    if (!(error instanceof PgFerryError) || error.code !== 'UNAVAILABLE') throw error;
    // Unreachable: still show what the configuration says, and say so.
    print(ctx, flags, await collect(ctx, undefined, error.message));
    return EXIT.CHECK_FAILED;
  }
}

function collect(ctx: CommandContext, db: Database | undefined, dbError?: string): Promise<SectionResult[]> {
  return collectSections({ config: ctx.config, db, dbError, now: new Date() });
}

function print(ctx: CommandContext, flags: StatusFlags, results: SectionResult[]): number {
  if (flags.json) {
    ctx.out(JSON.stringify(Object.fromEntries(results.map((r) => [r.id, r.error === undefined ? r.data : { error: r.error }]))));
    return EXIT.OK;
  }
  const byId = new Map(SECTIONS.map((s) => [s.id, s]));
  for (const result of results) {
    ctx.out(`== ${result.title}`);
    const lines = result.error === undefined ? byId.get(result.id)!.text(result.data) : [`unavailable: ${result.error}`];
    for (const line of lines) ctx.out(`   ${terminalSafe(line)}`);
  }
  return EXIT.OK;
}
