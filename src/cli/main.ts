import { Command, CommanderError, Option } from 'commander';
import { LOG_FORMATS, logFormat } from '../log.ts';
import { EXIT } from './context.ts';

/**
 * `pgferry` entry point. Each command lives in src/cli/commands/<name>.ts and
 * exports `register(program)`; add new commands to COMMANDS below.
 */
const COMMANDS: Array<() => Promise<{ register: (program: Command) => void }>> = [
  () => import('./commands/db.ts'),
  () => import('./commands/doctor.ts'),
  () => import('./commands/serve.ts'),
  () => import('./commands/import.ts'),
  () => import('./commands/verify.ts'),
  () => import('./commands/sample-data.ts'),
  () => import('./commands/jobs.ts'),
  () => import('./commands/audit.ts'),
  () => import('./commands/files.ts'),
  () => import('./commands/cutover.ts'),
  () => import('./commands/sync.ts'),
  () => import('./commands/archive.ts'),
  () => import('./commands/runs.ts'),
  () => import('./commands/status.ts'),
];

export function buildProgram(): Command {
  const program = new Command('pgferry')
    .description('Durable storage for Node.js apps: JSON files or PostgreSQL behind one API, and safe migration between them.')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    // A command's options are its own: `archive --to FILE` and `archive restore F --to DIR` do not mix.
    .enablePositionalOptions()
    .exitOverride()
    .addOption(logFormatOption())
    .hook('preAction', (root, command) => {
      // Decided once here, in the environment, so worker threads log the same way.
      const chosen = (command.opts() as { logFormat?: string }).logFormat ?? (root.opts() as { logFormat?: string }).logFormat;
      process.env.LOG_FORMAT = chosen ?? logFormat();
    });
  program.configureOutput({ outputError: (text, write) => write(text) });
  return program;
}

function logFormatOption(): Option {
  return new Option('--log-format <format>', 'log lines on stderr: human, or json (default: human on a terminal, JSON otherwise)').choices(
    LOG_FORMATS,
  );
}

/**
 * With positional options a program-level option is only seen before the
 * subcommand, so every command takes --log-format itself: `pgferry verify …
 * --log-format json` works like `pgferry --log-format json verify …`.
 */
function addLogFormatEverywhere(command: Command): void {
  for (const sub of command.commands) {
    sub.addOption(logFormatOption());
    addLogFormatEverywhere(sub);
  }
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  for (const load of COMMANDS) (await load()).register(program);
  addLogFormatEverywhere(program);
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version exit 0; unknown options / missing arguments are usage errors.
      process.exitCode = error.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
      return;
    }
    throw error;
  }
}
