import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import type { Config } from '../config.ts';
import { PgFerryError } from '../errors.ts';
import { type Logger, redactSecrets, redactUrl, silentLogger } from '../log.ts';

export type Sql = postgres.Sql<Record<string, never>>;
export type TransactionSql = postgres.TransactionSql<Record<string, never>>;

/**
 * Errors worth retrying because the server was unreachable or restarting.
 * Anything else (constraint violation, syntax, timeout of a statement) is a
 * real answer and is never retried.
 */
const CONNECTION_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EAI_AGAIN',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up / shutting down)
  '08000',
  '08001',
  '08003',
  '08004',
  '08006', // connection_exception class
]);
/** Errors that arise before the statement reached the server: safe to retry even for writes. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN', 'CONNECT_TIMEOUT', '57P03', '08001', '08004']);
const SERIALIZATION_CODES = new Set(['40001', '40P01']); // serialization_failure, deadlock_detected

/** Whether a table exists yet (a migration that has not run, or a part of pgferry not set up). */
export async function tableExists(sql: Sql, name: string): Promise<boolean> {
  const [row] = await sql<{ found: boolean }[]>`select to_regclass(${name}) is not null as found`;
  return row?.found === true;
}

export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function isConnectionError(error: unknown): boolean {
  const code = errorCode(error);
  return code !== undefined && CONNECTION_ERROR_CODES.has(code);
}

export interface DatabaseOptions {
  url: string;
  pool?: Config['pool'];
  statementTimeoutMs?: number;
  slowQueryMs?: number;
  logger?: Logger;
  /** Attempts for a connection failure (1 = no retry). */
  retries?: number;
  applicationName?: string;
}

export interface SlowQuery {
  label: string;
  /** The statement's text with $1-style placeholders — never the values — when the work returned a postgres.js result. */
  text?: string;
  ms: number;
  at: string;
}

/** The pool as pgferry sees it: work in flight beyond `max` waits for a connection. */
export interface PoolStats {
  max: number;
  inUse: number;
  waiting: number;
}

/** postgres.js results carry the statement they ran: its text has placeholders, the values travel apart. */
function statementText(result: unknown): string | undefined {
  const text = (result as { statement?: { string?: unknown } } | null)?.statement?.string;
  return typeof text === 'string' ? text.replace(/\s+/g, ' ').trim().slice(0, 500) : undefined;
}

export interface RunOptions {
  /** A read or an idempotent write may be retried even when the connection dropped mid-flight. */
  idempotent?: boolean;
}

/**
 * The one place SQL runs through: a postgres.js pool plus retry-with-backoff
 * for connection errors, slow-query warnings and redacted errors. Repositories
 * call `db.run('conversations.get', (sql) => sql`…`)`.
 */
export class Database {
  readonly sql: Sql;
  readonly displayUrl: string;
  readonly slowQueries: SlowQuery[] = [];
  readonly counters = { queries: 0, retries: 0, slow: 0, unavailable: 0 };
  private readonly logger: Logger;
  private readonly slowQueryMs: number;
  private readonly retries: number;
  private readonly poolMax: number;
  private inFlight = 0;
  private closed = false;

  constructor(options: DatabaseOptions) {
    this.logger = options.logger ?? silentLogger;
    this.slowQueryMs = options.slowQueryMs ?? 1000;
    this.retries = options.retries ?? 4;
    this.displayUrl = redactUrl(options.url);
    const pool = options.pool ?? { max: 15, idleSeconds: 30, connectTimeoutSeconds: 10 };
    this.poolMax = pool.max;
    this.sql = postgres(options.url, {
      max: pool.max,
      idle_timeout: pool.idleSeconds,
      connect_timeout: pool.connectTimeoutSeconds,
      // postgres.js waits up to 20 s between reconnects by default; after an
      // outage the first requests would stall that long. Retry within ~1 s.
      backoff: (retries: number) => (0.5 + Math.random() / 2) * Math.min(0.05 * 2 ** retries, 1),
      // Session settings sent in the startup packet: no extra round trip.
      connection: {
        application_name: options.applicationName ?? 'pgferry',
        statement_timeout: options.statementTimeoutMs ?? 30_000,
        TimeZone: 'UTC',
      },
      onnotice: (notice) => this.logger.debug({ notice: notice.message }, 'postgres notice'),
      // bigint (int8) columns — counts, sizes, identities — come back as JS
      // numbers: our values stay below 2^53, and a BigInt would break JSON.stringify.
      types: {
        bigint: { to: 20, from: [20], serialize: (value: number | bigint) => String(value), parse: (value: string) => Number(value) },
      },
      transform: { undefined: null },
    }) as unknown as Sql;
  }

  /** Run one unit of SQL work with retries for connection errors and slow-query logging. */
  async run<T>(label: string, work: (sql: Sql) => Promise<T>, options: RunOptions = {}): Promise<T> {
    return this.withRetry(
      label,
      () => work(this.sql),
      (error) => {
        const code = errorCode(error);
        if (code === undefined || !CONNECTION_ERROR_CODES.has(code)) return false;
        return options.idempotent === true || NOT_SENT_CODES.has(code);
      },
    );
  }

  /**
   * A transaction; the whole callback is retried on serialization failures,
   * deadlocks and connection errors (a transaction that did not commit left
   * nothing behind, so re-running it is safe).
   */
  async transaction<T>(label: string, work: (tx: TransactionSql) => Promise<T>): Promise<T> {
    return this.withRetry(
      label,
      () => this.sql.begin((tx) => work(tx as unknown as TransactionSql)) as Promise<T>,
      (error) => {
        const code = errorCode(error);
        // A connection lost during COMMIT is ambiguous; postgres.js reports it as
        // CONNECTION_CLOSED. We accept the retry because every pgferry
        // transaction is written to be idempotent (upserts, keyed inserts).
        return code !== undefined && (SERIALIZATION_CODES.has(code) || CONNECTION_ERROR_CODES.has(code));
      },
    );
  }

  poolStats(): PoolStats {
    return { max: this.poolMax, inUse: Math.min(this.inFlight, this.poolMax), waiting: Math.max(0, this.inFlight - this.poolMax) };
  }

  async ping(): Promise<void> {
    await this.run('ping', (sql) => sql`select 1`, { idempotent: true });
  }

  async close(timeoutSeconds = 5): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.sql.end({ timeout: timeoutSeconds });
  }

  private async withRetry<T>(label: string, attempt: () => Promise<T>, retryable: (error: unknown) => boolean): Promise<T> {
    for (let tryNumber = 1; ; tryNumber++) {
      const started = performance.now();
      this.inFlight++;
      try {
        this.counters.queries++;
        const result = await attempt();
        this.noteDuration(label, performance.now() - started, statementText(result));
        return result;
      } catch (error) {
        if (this.closed) throw new PgFerryError('UNAVAILABLE', 'the database connection is closed');
        if (tryNumber < this.retries && retryable(error)) {
          this.counters.retries++;
          const delay = Math.min(2000, 100 * 2 ** (tryNumber - 1)) * (0.5 + Math.random());
          this.logger.warn(
            { label, attempt: tryNumber, code: errorCode(error), delayMs: Math.round(delay) },
            'database unreachable, retrying',
          );
          await sleep(delay);
          continue;
        }
        throw this.translate(label, error);
      } finally {
        this.inFlight--;
      }
    }
  }

  private noteDuration(label: string, ms: number, text: string | undefined): void {
    if (ms < this.slowQueryMs) return;
    this.counters.slow++;
    const entry: SlowQuery = { label, ...(text === undefined ? {} : { text }), ms: Math.round(ms), at: new Date().toISOString() };
    this.slowQueries.push(entry);
    if (this.slowQueries.length > 100) this.slowQueries.shift();
    this.logger.warn(entry, `slow query: ${label} took ${entry.ms} ms (SLOW_QUERY_MS=${this.slowQueryMs})`);
  }

  private translate(label: string, error: unknown): Error {
    if (error instanceof PgFerryError) return error;
    if (isConnectionError(error)) {
      this.counters.unavailable++;
      return new PgFerryError('UNAVAILABLE', `database unavailable (${errorCode(error)}) during ${label}`, undefined, {
        cause: error,
      });
    }
    if (error instanceof Error) error.message = redactSecrets(error.message);
    return error as Error;
  }
}

/** The same connection string, pointing at database `name` on the same server. */
export function withDatabase(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

/** Connect and check the server answers, retrying with backoff for up to `waitSeconds`. */
export async function connectDatabase(options: DatabaseOptions & { waitSeconds?: number }): Promise<Database> {
  const db = new Database(options);
  const deadline = Date.now() + (options.waitSeconds ?? 10) * 1000;
  for (let attempt = 1; ; attempt++) {
    try {
      await db.sql`select 1`;
      return db;
    } catch (error) {
      if (!isConnectionError(error) && errorCode(error) !== '28P01' && errorCode(error) !== '3D000') {
        await db.close(0);
        throw new PgFerryError('UNAVAILABLE', `cannot use database ${db.displayUrl}: ${redactSecrets(String((error as Error).message))}`);
      }
      if (!isConnectionError(error) || Date.now() > deadline) {
        await db.close(0);
        throw new PgFerryError(
          'UNAVAILABLE',
          `cannot connect to ${db.displayUrl}: ${redactSecrets(String((error as Error).message))}. Check DATABASE_URL and that the server is running.`,
        );
      }
      const delay = Math.min(2000, 100 * 2 ** (attempt - 1));
      options.logger?.warn({ attempt, code: errorCode(error), delayMs: delay }, 'database not reachable yet, retrying');
      await sleep(delay);
    }
  }
}
