import type { Command } from 'commander';
import { openStore } from '../../store/open.ts';
import { action, EXIT, makeContext } from '../context.ts';

const EXAMPLES = `
Examples:
  pgferry jobs purge --older-than 7d            # the seed's 7-day retention
  STORAGE_JOBS=json DATABASE_URL=… pgferry jobs purge --older-than 7d --json

Removes report jobs (seed 002) that are done or failed and finished more than
the given time ago (a job without a finish time counts from its creation).
A started or running job is never removed, however old. Works on whichever
backend jobs are on (STORAGE_JOBS, else STORAGE_MODE); writes one audit entry.
Library call: await store.jobs.purgeFinished('7d').`;

export function register(program: Command): void {
  const jobs = program.command('jobs').description("Seed 002's report jobs: retention");
  jobs
    .command('purge')
    .description('Remove finished jobs past retention (never a started or running one)')
    .requiredOption('--older-than <duration>', 'age such as 7d, 12h, 30m (d, h, m, s, w)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', EXAMPLES)
    .action(action((flags: { olderThan: string; json?: boolean }) => purgeCommand(flags)));
}

async function purgeCommand(flags: { olderThan: string; json?: boolean }): Promise<number> {
  const ctx = makeContext();
  const store = await openStore({ config: ctx.config, logger: ctx.logger });
  try {
    const result = await store.jobs.purgeFinished(flags.olderThan);
    ctx.out(flags.json ? JSON.stringify(result) : `purged ${result.purged} finished job(s) older than ${result.before}`);
    return EXIT.OK;
  } finally {
    await store.close();
  }
}
