import { type Command, InvalidArgumentError, Option } from 'commander';
import { getRun, listRuns, RUN_COMMANDS, type RunCommand, type RunRow, runProblems } from '../../runs/record.ts';
import { formatTable, seconds, terminalSafe } from '../../transfer/summary.ts';
import { action, EXIT } from '../context.ts';
import { contextFor, withSession } from './db.ts';
import { parseCount } from './import.ts';

/**
 * `pgferry runs [id]`: the run history (import, verify, sync, files move,
 * archive) from the database — the same rows the admin page shows.
 */

interface RunsFlags {
  databaseUrl?: string;
  limit: number;
  command?: RunCommand;
  json?: boolean;
}

function parseRunId(value: string): number {
  const id = Number(value);
  if (!/^\d{1,15}$/.test(value) || id < 1) throw new InvalidArgumentError('expected a run id (a positive integer)');
  return id;
}

export function register(program: Command): void {
  program
    .command('runs')
    .description('List the recorded runs (import, verify, …) with their counts; with an id, one run and its first problems')
    .argument('[id]', 'show this run and its problems', parseRunId)
    .option('--database-url <url>', 'PostgreSQL URL, or "embedded" (default: DATABASE_URL)')
    .option('--limit <n>', 'runs to list', parseCount('--limit', 1, 1000), 20)
    .addOption(new Option('--command <name>', 'only runs of this command').choices(RUN_COMMANDS))
    .option('--json', 'print JSON instead of a table')
    .addHelpText('after', '\nExamples:\n  pgferry runs\n  pgferry runs --command verify --limit 5\n  pgferry runs 12 --json')
    .action(action((id: number | undefined, flags: RunsFlags) => runsCommand(id, flags)));
}

async function runsCommand(id: number | undefined, flags: RunsFlags): Promise<number> {
  const ctx = contextFor(flags);
  return withSession(ctx, async ({ db }) => {
    if (id !== undefined) {
      const run = await getRun(db.sql, id);
      if (!run) {
        process.stderr.write(`pgferry: no run ${id}\n`);
        return EXIT.CHECK_FAILED;
      }
      const problems = await runProblems(db.sql, id);
      if (flags.json) ctx.out(JSON.stringify({ ...run, problemLines: problems }));
      else {
        for (const line of describeRun(run)) ctx.out(line);
        for (const p of problems)
          ctx.out(`  ${p.severity.padEnd(7)} ${terminalSafe(p.file ?? '-')} [${terminalSafe(p.record ?? '-')}]: ${terminalSafe(p.reason)}`);
      }
      return EXIT.OK;
    }
    const runs = await listRuns(db.sql, { limit: flags.limit, ...(flags.command ? { command: flags.command } : {}) });
    if (flags.json) ctx.out(JSON.stringify(runs));
    else if (runs.length === 0) ctx.out('no runs recorded yet');
    else ctx.out(runsTable(runs));
    return EXIT.OK;
  });
}

/** `ok`, `failed (exit 1)`, `running 40%`, `running (stale)`. */
export function runState(run: RunRow): string {
  if (run.status === 'running') {
    if (run.stale) return 'running (stale: no heartbeat)';
    const { done, total } = run.progress;
    return total ? `running ${Math.floor(((done ?? 0) / total) * 100)}%` : 'running';
  }
  return run.status === 'ok' ? 'ok' : `${run.status} (exit ${run.exitCode})`;
}

/** Sum of one count over the kinds: read, inserted, … (verify: source, matched, …). */
export function total(run: RunRow, field: string): number {
  return Object.values(run.counts).reduce((n, counts) => n + (counts[field] ?? 0), 0);
}

export function runsTable(runs: RunRow[]): string {
  const rows = runs.map((run) => [
    run.id,
    run.command,
    run.startedAt.replace('T', ' ').slice(0, 19),
    seconds(run.durationMs),
    runState(run),
    run.command === 'verify' ? total(run, 'source') : total(run, 'read'),
    run.problems,
    terminalSafe(run.source ?? '-'),
  ]);
  return formatTable(['id', 'command', 'started (UTC)', 'took', 'status', 'records', 'problems', 'source'], rows);
}

function describeRun(run: RunRow): string[] {
  const lines = [
    `run ${run.id}: ${run.command} ${runState(run)}`,
    `  source   ${terminalSafe(run.source ?? '-')}`,
    `  started  ${run.startedAt}${run.finishedAt ? `, finished ${run.finishedAt} (${seconds(run.durationMs)})` : ''}`,
    `  host     ${run.host ?? '-'} pid ${run.pid ?? '-'}`,
  ];
  if (run.reportPath) lines.push(`  report   ${terminalSafe(run.reportPath)}`);
  if (run.error) lines.push(`  error    ${terminalSafe(run.error)}`);
  const fields = [...new Set(Object.values(run.counts).flatMap((counts) => Object.keys(counts)))];
  if (fields.length > 0) {
    lines.push(
      formatTable(
        ['kind', ...fields],
        Object.entries(run.counts).map(([kind, counts]) => [kind, ...fields.map((f) => counts[f] ?? 0)]),
      ),
    );
  }
  lines.push(`  ${run.problems} problems, ${run.warnings} warnings${run.problems + run.warnings > 0 ? ' (the first ones below)' : ''}`);
  return lines;
}
