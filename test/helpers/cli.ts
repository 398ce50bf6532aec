import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Run the real CLI in a child process (bin/pgferry.js on this Node), the way
 * a person or a deploy script would: exit code, stdout and stderr.
 */

export const BIN = fileURLToPath(new URL('../../bin/pgferry.js', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `env` is laid over a copy of this process's environment with DATABASE_URL,
 * DATA_DIR and PG_DUMP removed, so only what a test passes reaches the CLI.
 */
export function runCli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  const base: Record<string, string | undefined> = { ...process.env, LOG_LEVEL: 'info' };
  for (const name of ['DATABASE_URL', 'DATA_DIR', 'PG_DUMP', 'STORAGE_MODE', 'AUTO_MIGRATE']) delete base[name];
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The JSON log lines a run wrote to stderr (other stderr lines are the human error message). */
export function logLines(stderr: string): Array<Record<string, unknown>> {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

export interface TimedRun extends CliResult {
  /** True when the run had to be killed at the deadline (a hang). */
  timedOut: boolean;
  /** Wall time of the run. */
  ms: number;
}

/**
 * The CLI with a deadline: killed (and reported as timed out) when it runs
 * longer than `timeoutMs`. Only what `env` passes reaches it (on top of this
 * process's environment without DATABASE_URL, DATA_DIR, PG_DUMP,
 * STORAGE_MODE, AUTO_MIGRATE and TIER_LIMITS); logs at `warn` unless told otherwise.
 */
export function runCliWithDeadline(
  args: string[],
  options: { env?: Record<string, string | undefined>; timeoutMs?: number } = {},
): Promise<TimedRun> {
  const base: Record<string, string | undefined> = { ...process.env, LOG_LEVEL: 'warn' };
  for (const name of ['DATABASE_URL', 'DATA_DIR', 'PG_DUMP', 'STORAGE_MODE', 'AUTO_MIGRATE', 'TIER_LIMITS']) delete base[name];
  const started = performance.now();
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...base, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, options.timeoutMs ?? 30_000);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut, ms: performance.now() - started });
    });
  });
}
