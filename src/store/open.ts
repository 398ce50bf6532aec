import { type Config, type Env, loadConfig, modeOf, repositoryModeVariable } from '../config.ts';
import { openDatabase } from '../db/connect.ts';
import type { Database } from '../db/database.ts';
import { PgFerryError } from '../errors.ts';
import { createLogger, type Logger, redactSecrets, redactUrl } from '../log.ts';
import { Migrator } from '../schema/migrator.ts';
import { createFormsRepositories } from './core/forms.ts';
import type { FormsBackends } from './core/forms-backend.ts';
import { createContext } from './json/context.ts';
import { jsonFormsBackends } from './json/forms.ts';
import { createJsonStore } from './json/index.ts';
import { createModesStore, storeModes } from './modes/index.ts';
import { postgresFormsBackends } from './postgres/forms.ts';
import { createPostgresStore } from './postgres/index.ts';
import { type BackendName, type Clock, type Store, systemClock } from './types.ts';

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
  const forms = formsModesOf(config);

  const modes = Object.values(storeModes(config));
  if (!config.databaseUrl || (modes.every((mode) => mode === 'json') && !Object.values(forms).includes('postgres'))) {
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
  let base: Store = postgresStore;
  if (cutover) {
    // Phases 1-3 of the cutover, or per-repository modes: both stores, composed (store/modes/).
    const json = openJson(config, logger, options.clock);
    base = await createModesStore({ config, json, postgres: postgresStore, db, logger });
    logger.info({ modes: storeModes(config), shadowReadRate: config.shadowReadRate }, 'storage: cutover modes');
  }
  const store = withFormsModes(base, forms, { config, db, logger, clock: options.clock });
  const close = store.close.bind(store);
  return Object.assign(store, {
    close: async () => {
      await close();
      await stopEmbedded();
    },
  });
}

/** Seed 002's repositories and the backend each runs on (STORAGE_<NAME>, else STORAGE_MODE). */
type FormsModes = { submissions: BackendName; jobs: BackendName; uploadedFiles: BackendName; audit: BackendName };

/**
 * Each forms repository's backend: json or postgres (the cutover modes are
 * not available for them here). Uploaded files live with their submission
 * (a foreign key on PostgreSQL, inside the document on JSON), so the two
 * must share a backend; jobs and the audit log may go their own way — the
 * seed's hybrid option keeps jobs on JSON.
 */
function formsModesOf(config: Config): FormsModes {
  const modeFor = (repository: keyof FormsModes): BackendName => {
    const mode = modeOf(config, repository);
    if (mode === 'json' || mode === 'postgres') return mode;
    const variable = config.repositoryModes[repository] ? repositoryModeVariable(repository) : 'STORAGE_MODE';
    throw new PgFerryError('CONFIG_ERROR', `${variable}: "${mode}" is not available for ${repository}; use "json" or "postgres"`, {
      variable,
    });
  };
  const modes = {
    submissions: modeFor('submissions'),
    jobs: modeFor('jobs'),
    uploadedFiles: modeFor('uploadedFiles'),
    audit: modeFor('audit'),
  };
  if (modes.uploadedFiles !== modes.submissions) {
    throw new PgFerryError(
      'CONFIG_ERROR',
      `STORAGE_UPLOADED_FILES: uploaded files live with their submissions; set it to "${modes.submissions}" like submissions, or leave it unset`,
      { variable: 'STORAGE_UPLOADED_FILES' },
    );
  }
  return modes;
}

/**
 * The store with each forms repository on the backend its mode names (the
 * hybrid option, e.g. STORAGE_JOBS=json with everything else on PostgreSQL).
 * Unchanged when they all match the store's own backend.
 */
function withFormsModes(
  base: Store,
  modes: FormsModes,
  deps: { config: Config; db: Database; logger: Logger; clock: Clock | undefined },
): Store {
  if (Object.values(modes).every((mode) => mode === base.backend)) return base;
  const { config, db, logger, clock } = deps;
  const ctx = createContext({ dataDir: config.dataDir, tierLimits: config.tierLimits, clock: clock ?? systemClock, logger, lock: {} });
  const json = jsonFormsBackends(ctx);
  const postgres = postgresFormsBackends({ db, clock });
  const pick = <K extends keyof FormsBackends>(key: K, mode: BackendName): FormsBackends[K] =>
    (mode === 'json' ? json[key] : postgres[key]) as FormsBackends[K];
  const repositories = createFormsRepositories({
    submissions: pick('submissions', modes.submissions),
    jobs: pick('jobs', modes.jobs),
    files: pick('files', modes.uploadedFiles),
    audit: pick('audit', modes.audit),
  });
  logger.info({ repositories: modes, dataDir: config.dataDir }, 'storage: hybrid (per-repository backends)');
  return {
    ...base,
    ...repositories,
    health: () => base.health(),
    close: async () => {
      await ctx.drain();
      await base.close();
    },
  };
}

function openJson(config: Config, logger: Logger, clock: Clock | undefined): Store {
  return createJsonStore({ dataDir: config.dataDir, tierLimits: config.tierLimits, logger, clock });
}
