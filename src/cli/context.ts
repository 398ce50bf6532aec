import { type Config, type Env, loadConfig } from '../config.ts';
import { PgFerryError } from '../errors.ts';
import { createLogger, type Logger, redactSecrets } from '../log.ts';

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
    process.stderr.write(`pgferry: ${redactSecrets(error.message)}\n`);
    return error.code === 'CONFIG_ERROR' || error.code === 'INVALID_INPUT' ? EXIT.USAGE : EXIT.CHECK_FAILED;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`pgferry: unexpected error: ${redactSecrets(message)}\n`);
  if (process.env.LOG_LEVEL === 'debug' && error instanceof Error && error.stack) {
    process.stderr.write(`${redactSecrets(error.stack)}\n`);
  }
  return EXIT.CHECK_FAILED;
}

/** Wrap a command action: sets process.exitCode from the result or the error. */
export function action<A extends unknown[]>(run: (...args: A) => Promise<number | undefined>) {
  return async (...args: A): Promise<void> => {
    try {
      process.exitCode = (await run(...args)) ?? EXIT.OK;
    } catch (error) {
      process.exitCode = reportError(error);
    }
  };
}
