import type { Config } from '../config.ts';
import { PgFerryError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { connectDatabase, type Database, type DatabaseOptions } from './database.ts';
import { guardPostgresJsNullSocketWrite } from './driver-guard.ts';
import { resolveDatabaseUrl } from './embedded.ts';

/**
 * Configuration → database connection, in one place. The store, `serve`,
 * the `db`/`doctor` commands and import/verify (main thread and worker) all
 * connect through here, so DB_POOL_*, DB_CONNECT_TIMEOUT_S,
 * DB_STATEMENT_TIMEOUT_MS and SLOW_QUERY_MS mean the same everywhere. What
 * differs between them is the role:
 *
 * - `app`: the store's requests, exactly as configured;
 * - `transfer`: import and verify, whose batch statements take seconds: the
 *   statement timeout is at least 10 minutes and a statement is "slow" after
 *   at least 60 s (a larger configured value wins);
 * - `admin`: migrations and schema checks, with no statement timeout (an
 *   index build may legitimately run for minutes).
 */

export type DatabaseRole = 'app' | 'transfer' | 'admin';

export interface ConnectOptions {
  role: DatabaseRole;
  logger: Logger;
  /** Pool size when the role needs a fixed number (batches in flight + bookkeeping); default DB_POOL_MAX. */
  connections?: number;
  /** application_name shown in pg_stat_activity; default per role. */
  applicationName?: string;
}

const TRANSFER_MIN_STATEMENT_TIMEOUT_MS = 600_000;
const TRANSFER_MIN_SLOW_QUERY_MS = 60_000;

const APPLICATION_NAME: Record<DatabaseRole, string> = { app: 'pgferry', transfer: 'pgferry transfer', admin: 'pgferry-cli' };

function statementTimeoutFor(role: DatabaseRole, configured: number): number {
  if (role === 'admin') return 0;
  // 0 means "no timeout" in PostgreSQL: keep it, it is already longer than any floor.
  if (role === 'transfer' && configured !== 0) return Math.max(configured, TRANSFER_MIN_STATEMENT_TIMEOUT_MS);
  return configured;
}

/** The postgres.js-level options for `url` under `config`: the single mapping from configuration to a pool. */
export function databaseOptions(config: Config, url: string, options: ConnectOptions): DatabaseOptions & { waitSeconds: number } {
  return {
    url,
    pool: { ...config.pool, max: options.connections ?? config.pool.max },
    statementTimeoutMs: statementTimeoutFor(options.role, config.statementTimeoutMs),
    slowQueryMs: options.role === 'transfer' ? Math.max(config.slowQueryMs, TRANSFER_MIN_SLOW_QUERY_MS) : config.slowQueryMs,
    logger: options.logger,
    applicationName: options.applicationName ?? APPLICATION_NAME[options.role],
    waitSeconds: config.pool.connectTimeoutSeconds,
  };
}

/** Connect to an already resolved postgres:// URL with the configuration's settings (the import worker's case). */
export function connectWithConfig(config: Config, url: string, options: ConnectOptions): Promise<Database> {
  return connectDatabase(databaseOptions(config, url, options));
}

export interface ConfiguredDatabase {
  db: Database;
  /** The URL actually connected to (`embedded` resolved to the local server's address). */
  url: string;
  /** Stop the embedded server this call started (no-op otherwise); the caller closes `db` first. */
  stopServer(): Promise<void>;
  /** Close the pool, then stop the embedded server if this call started it. */
  close(): Promise<void>;
}

/**
 * Open `config.databaseUrl`: `embedded` starts (or joins) the local cluster
 * under DATA_DIR/postgres; then connect, retrying for DB_CONNECT_TIMEOUT_S.
 * A failure leaves nothing running.
 */
export async function openDatabase(config: Config, options: ConnectOptions): Promise<ConfiguredDatabase> {
  if (!config.databaseUrl) throw new PgFerryError('CONFIG_ERROR', 'DATABASE_URL is not set', { variable: 'DATABASE_URL' });
  const resolved = await resolveDatabaseUrl(config.databaseUrl, config.dataDir, options.logger);
  // A long-lived app process must outlive PostgreSQL restarts (see driver-guard.ts).
  if (options.role === 'app') guardPostgresJsNullSocketWrite(options.logger);
  let db: Database;
  try {
    db = await connectWithConfig(config, resolved.url, options);
  } catch (error) {
    await resolved.stop().catch(() => {});
    throw error;
  }
  return {
    db,
    url: resolved.url,
    stopServer: resolved.stop,
    close: async () => {
      await db.close();
      await resolved.stop();
    },
  };
}
