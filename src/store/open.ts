import { type Config, type Env, loadConfig } from '../config.ts';
import { openDatabase } from '../db/connect.ts';
import type { Database } from '../db/database.ts';
import { PgFerryError } from '../errors.ts';
import { createLogger, type Logger, redactSecrets, redactUrl } from '../log.ts';
import { Migrator } from '../schema/migrator.ts';
import { createJsonStore } from './json/index.ts';
import { createPostgresStore } from './postgres/index.ts';
import type { Clock, Store } from './types.ts';

export interface OpenStoreOptions {
  /** Overrides on top of the environment (DATABASE_URL, DATA_DIR, STORAGE_MODE, …). */
  config?: Partial<Config>;
  env?: Env;
  logger?: Logger;
  clock?: Clock;
  /** Run pending schema migrations on open (default: config.autoMigrate). */
  migrate?: boolean;
}

/**
 * Open the Store the configuration asks for (DESIGN sections 2 and 5):
 * no DATABASE_URL → JSON files in DATA_DIR; otherwise PostgreSQL, migrated on
 * open unless disabled. When PostgreSQL is unreachable it retries with
 * backoff, then fails (ON_DB_UNAVAILABLE=fail, the production default) or
 * falls back to JSON files with a loud warning (development default).
 *
 * @example
 *   const store = await openStore();            // env decides
 *   const c = await store.conversations.create('alice', { title: 'Hi' });
 *   await store.conversations.addUserMessage('alice', c.id, 'Hello');
 *   await store.close();
 */
export async function openStore(options: OpenStoreOptions = {}): Promise<Store> {
  const config = loadConfig(options.env ?? process.env, options.config ?? {});
  const logger = options.logger ?? createLogger({ level: config.logLevel });

  if (!config.databaseUrl || config.storageMode === 'json') {
    logger.info({ backend: 'json', mode: 'json', dataDir: config.dataDir }, 'storage: JSON files (single host)');
    return openJson(config, logger, options.clock);
  }
  if (config.storageMode === 'dual' || config.storageMode === 'postgres-fallback') {
    throw new PgFerryError(
      'CONFIG_ERROR',
      `STORAGE_MODE: "${config.storageMode}" (cutover phases) is not available in this version; use "json" or "postgres"`,
      {
        variable: 'STORAGE_MODE',
      },
    );
  }

  let db: Database;
  let stopEmbedded: () => Promise<void>;
  try {
    ({ db, stopServer: stopEmbedded } = await openDatabase(config, { role: 'app', logger }));
  } catch (error) {
    const reason = redactSecrets(error instanceof Error ? error.message : String(error));
    if (config.onDbUnavailable === 'fallback') {
      logger.error(
        { backend: 'json', reason },
        '!!! PostgreSQL is unavailable: FALLING BACK TO JSON FILES. Data written now will not be in PostgreSQL. Set ON_DB_UNAVAILABLE=fail to refuse instead.',
      );
      return openJson(config, logger, options.clock);
    }
    throw error instanceof PgFerryError ? error : new PgFerryError('UNAVAILABLE', reason);
  }

  try {
    if (options.migrate ?? config.autoMigrate) await new Migrator(db.sql, { logger }).up();
  } catch (error) {
    await db.close();
    await stopEmbedded();
    throw error;
  }
  logger.info(
    {
      backend: 'postgres',
      mode: config.storageMode,
      database: config.databaseUrl === 'embedded' ? 'embedded' : redactUrl(config.databaseUrl),
    },
    'storage: PostgreSQL',
  );
  const store = createPostgresStore({ db, tierLimits: config.tierLimits, logger, clock: options.clock, ownsDb: true });
  const close = store.close.bind(store);
  return Object.assign(store, {
    close: async () => {
      await close();
      await stopEmbedded();
    },
  });
}

function openJson(config: Config, logger: Logger, clock: Clock | undefined): Store {
  return createJsonStore({ dataDir: config.dataDir, tierLimits: config.tierLimits, logger, clock });
}
