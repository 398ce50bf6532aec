import { execFile } from 'node:child_process';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { PgFerryError } from '../errors.ts';
import { type Logger, redactSecrets, redactUrl, silentLogger } from '../log.ts';

/**
 * `--backup FILE`: a `pg_dump --format=custom` copy taken before migrating,
 * restorable with `pg_restore`. The password travels in PGPASSWORD, never on
 * the command line (where `ps` would show it). pg_dump cannot dump a server
 * newer than itself, so versions are checked first to fail with advice rather
 * than pg_dump's terse "server version mismatch".
 */

const run = promisify(execFile);

export interface PgDumpInfo {
  command: string;
  /** e.g. "15.18" */
  version: string;
  major: number;
}

export interface BackupOptions {
  /** pg_dump executable (default: `pg_dump` on PATH; the CLI passes $PG_DUMP). */
  pgDump?: string;
}

export interface BackupResult {
  file: string;
  bytes: number;
  durationMs: number;
  pgDumpVersion: string;
  serverVersion: string;
}

/** What to do about a missing or too-old pg_dump; `major` is the server's major version when known. */
const installAdvice = (major?: number) =>
  `Install the PostgreSQL ${major ?? '<server major version>'} client tools or newer ` +
  `(Debian/Ubuntu: apt-get install postgresql-client-${major ?? 'N'}, from apt.postgresql.org when your release lacks it) ` +
  'and put that pg_dump first on PATH or set PG_DUMP=/path/to/pg_dump; or run without --backup.';

/** Locate pg_dump and read its version; a clear error when it is not installed. */
export async function findPgDump(command = 'pg_dump'): Promise<PgDumpInfo> {
  let stdout: string;
  try {
    ({ stdout } = await run(command, ['--version'], { timeout: 10_000 }));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'is not installed (not found on PATH)' : `could not be run (${code ?? (error as Error).message})`;
    throw new PgFerryError('MIGRATION_ERROR', `--backup needs pg_dump, but "${command}" ${why}. ${installAdvice()}`);
  }
  const match = /(\d+)(?:\.(\d+))?/.exec(stdout.replace(/^[^)]*\)/, ''));
  if (!match) throw new PgFerryError('MIGRATION_ERROR', `cannot read the version of ${command} from "${stdout.trim()}"`);
  return { command, version: match[2] ? `${match[1]}.${match[2]}` : match[1]!, major: Number(match[1]) };
}

/** The server's version, e.g. { version: "18.1", major: 18 }. */
export async function serverVersion(url: string): Promise<{ version: string; major: number }> {
  const sql = postgres(url, { max: 1, connect_timeout: 10, onnotice: () => {} });
  try {
    const [row] = await sql<{ num: string; text: string }[]>`
      select current_setting('server_version_num') as num, current_setting('server_version') as text`;
    const num = Number(row?.num);
    return { version: String(row?.text).split(' ')[0]!, major: Math.floor(num / 10_000) };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Refuse a pg_dump older than the server, naming both versions and the fix. */
export function checkPgDumpVersion(pgDump: PgDumpInfo, server: { version: string; major: number }): void {
  if (pgDump.major >= server.major) return;
  throw new PgFerryError(
    'MIGRATION_ERROR',
    `pg_dump ${pgDump.version} (${pgDump.command}) is older than the server (PostgreSQL ${server.version}) and cannot back it up. ` +
      installAdvice(server.major),
  );
}

/** libpq environment for a connection URL: the password stays out of argv. */
export function libpqEnv(url: string): Record<string, string> {
  const parsed = new URL(url);
  const env: Record<string, string> = {
    PGHOST: parsed.searchParams.get('host') ?? parsed.hostname.replace(/^\[|\]$/g, ''),
    PGPORT: parsed.port || '5432',
    PGAPPNAME: 'pgferry-backup',
  };
  if (parsed.username) env.PGUSER = decodeURIComponent(parsed.username);
  if (parsed.password) env.PGPASSWORD = decodeURIComponent(parsed.password);
  const database = decodeURIComponent(parsed.pathname.slice(1));
  if (database) env.PGDATABASE = database;
  const sslmode = parsed.searchParams.get('sslmode') ?? parsed.searchParams.get('ssl');
  if (sslmode && sslmode !== 'false') env.PGSSLMODE = sslmode === 'true' ? 'require' : sslmode;
  return env;
}

/**
 * Dump the database at `url` to `file` in pg_dump's custom format. Written
 * to a temporary name and renamed, so an interrupted dump never looks like a
 * finished backup.
 *
 * @example
 *   await backupDatabase(url, 'backups/before-0002.dump', logger);
 *   // restore: pg_restore --clean --if-exists -d "$DATABASE_URL" backups/before-0002.dump
 */
export async function backupDatabase(
  url: string,
  file: string,
  logger: Logger = silentLogger,
  options: BackupOptions = {},
): Promise<BackupResult> {
  const target = path.resolve(file);
  const pgDump = await findPgDump(options.pgDump);
  const server = await serverVersion(url);
  checkPgDumpVersion(pgDump, server);
  await mkdir(path.dirname(target), { recursive: true });
  const partial = `${target}.partial-${process.pid}`;
  logger.info({ file: target, database: redactUrl(url), pgDump: pgDump.version, server: server.version }, 'backup: running pg_dump');
  const started = performance.now();
  try {
    await run(pgDump.command, ['--format=custom', '--no-password', `--file=${partial}`], {
      env: { ...process.env, ...libpqEnv(url) },
      maxBuffer: 16 * 1024 * 1024,
    });
    await rename(partial, target);
  } catch (error) {
    await rm(partial, { force: true });
    const detail = redactSecrets(String((error as { stderr?: string }).stderr || (error as Error).message).trim());
    logger.error({ file: target, error: detail }, 'backup: pg_dump failed');
    throw new PgFerryError('MIGRATION_ERROR', `backup to ${target} failed: ${detail}`, undefined, { cause: error });
  }
  const { size } = await stat(target);
  const durationMs = Math.round(performance.now() - started);
  logger.info({ file: target, bytes: size, durationMs }, 'backup: written');
  return { file: target, bytes: size, durationMs, pgDumpVersion: pgDump.version, serverVersion: server.version };
}
