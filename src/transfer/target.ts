import type { Config } from '../config.ts';
import { openDatabase } from '../db/connect.ts';
import type { Database } from '../db/database.ts';
import { PgFerryError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { Migrator } from '../schema/migrator.ts';

/**
 * The database import and verify write to / read from: `--to URL`, else
 * DATABASE_URL; `embedded` starts (or joins) the local cluster under
 * DATA_DIR/postgres. Import migrates it to the latest schema first.
 */

export interface Target {
  db: Database;
  /** The connection string actually used (`embedded` resolved to the local server's). */
  url: string;
  close(): Promise<void>;
}

export function checkTargetUrl(url: string | undefined, flag = '--to'): string {
  if (url === undefined || url === '') {
    throw new PgFerryError('CONFIG_ERROR', `no database: pass ${flag} postgres://… (or "embedded"), or set DATABASE_URL`);
  }
  if (url !== 'embedded' && !/^postgres(ql)?:\/\/./i.test(url)) {
    throw new PgFerryError('CONFIG_ERROR', `${flag}: expected a postgres:// or postgresql:// URL, or "embedded"`);
  }
  return url;
}

export async function openTarget(options: {
  url: string;
  config: Config;
  logger: Logger;
  /** Connections needed at once (batches in flight + bookkeeping). */
  connections: number;
  migrate: boolean;
}): Promise<Target> {
  // Batch statements take seconds: the transfer role allows for slow disks (src/db/connect.ts).
  const { db, url, close } = await openDatabase(
    { ...options.config, databaseUrl: options.url },
    { role: 'transfer', logger: options.logger, connections: Math.max(2, options.connections) },
  );
  if (options.migrate) {
    try {
      await new Migrator(db.sql, { logger: options.logger }).up();
    } catch (error) {
      await close();
      throw error;
    }
  }
  return { db, url, close };
}

/** One import at a time per database: a session advisory lock held for the run (released if the process dies). */
export const IMPORT_LOCK_KEY = 7_220_415_032;

/**
 * Take the one-loader lock. `waitSeconds` > 0 queues for it that long first:
 * `pgferry sync` holds it only for each batch it commits, so an import started
 * beside a running sync gets it between two batches (PostgreSQL grants it in
 * turn; sync's try-lock does not jump the queue).
 */
export async function lockImport(db: Database, waitSeconds = 0): Promise<() => Promise<void>> {
  const conn = await db.sql.reserve();
  let locked = false;
  if (waitSeconds > 0) {
    try {
      await conn.unsafe(`set lock_timeout = '${Math.round(waitSeconds * 1000)}ms'`);
      await conn`select pg_advisory_lock(${IMPORT_LOCK_KEY})`;
      locked = true;
    } catch (error) {
      if ((error as { code?: string }).code !== '55P03') {
        conn.release();
        throw error;
      }
    } finally {
      await conn`reset lock_timeout`.catch(() => {});
    }
  } else {
    const [row] = await conn<{ locked: boolean }[]>`select pg_try_advisory_lock(${IMPORT_LOCK_KEY}) as locked`;
    locked = row?.locked === true;
  }
  if (!locked) {
    conn.release();
    throw new PgFerryError(
      'CONFLICT',
      'another pgferry import is running against this database: wait for it to finish (or stop it) and run again',
    );
  }
  return async () => {
    await conn`select pg_advisory_unlock(${IMPORT_LOCK_KEY})`.catch(() => {});
    conn.release();
  };
}
