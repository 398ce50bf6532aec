import { type Config, type Env, loadConfig } from '../config.ts';
import { openDatabase } from '../db/connect.ts';
import type { Database } from '../db/database.ts';
import { PgFerryError } from '../errors.ts';
import { createLogger, type Logger, redactSecrets, redactUrl } from '../log.ts';
import { Migrator } from '../schema/migrator.ts';
import { createJsonStore } from './json/index.ts';
import { checkRepositoryModes, createModesStore, storeModes } from './modes/index.ts';
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
  // Refused combinations (e.g. uploads in dual) fail before anything opens.
  checkRepositoryModes(config);
  const modes = Object.values(storeModes(config));
  if (!config.databaseUrl || modes.every((mode) => mode === 'json')) {
    logger.info({ backend: 'json', mode: 'json', dataDir: config.dataDir }, 'storage: JSON files (single host)');
    return openJson(config, logger, options.clock);
  }
  const cutover = modes.some((mode) => mode !== 'postgres');

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
  const postgresStore = createPostgresStore({ db, tierLimits: config.tierLimits, logger, clock: options.clock, ownsDb: true });
  let store: Store = postgresStore;
  if (cutover) {
    // Phases 1-3 of the cutover, or per-repository modes (the hybrid option): both stores, composed (store/modes/).
    const json = openJson(config, logger, options.clock);
    store = await createModesStore({ config, json, postgres: postgresStore, db, logger, clock: options.clock });
    logger.info({ modes: storeModes(config), shadowReadRate: config.shadowReadRate }, 'storage: cutover modes');
  }
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
