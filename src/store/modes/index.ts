import { type Config, modeOf, type RepositoryName, type StorageMode } from '../../config.ts';
import type { Database } from '../../db/database.ts';
import type { Logger } from '../../log.ts';
import type { Store, StoreHealth, StoreScope } from '../types.ts';
import { composeRepository, type RepositorySpec } from './compose.ts';
import { Mirror } from './mirror.ts';
import { ShadowReads } from './shadow.ts';
import { conversationsSpec, usageSpec } from './specs.ts';

export type { RecordRef } from './apply.ts';
export { applyRecordFiles } from './apply.ts';
export type { RepositorySpec } from './compose.ts';
export { Journal } from './journal.ts';
export { Mirror } from './mirror.ts';
export { readShadowFile, ShadowReads } from './shadow.ts';

/** The Store's repositories and their cutover specs: a new repository is one line here and one spec. */
const SPECS = {
  conversations: conversationsSpec,
  usage: usageSpec,
} as const satisfies Partial<Record<RepositoryName, { name: RepositoryName }>>;

type StoreRepositories = keyof typeof SPECS;
export const STORE_REPOSITORIES = Object.keys(SPECS) as StoreRepositories[];

/** The mode each of the Store's repositories runs in. */
export function storeModes(config: Config): Record<StoreRepositories, StorageMode> {
  return Object.fromEntries(STORE_REPOSITORIES.map((name) => [name, modeOf(config, name)])) as Record<StoreRepositories, StorageMode>;
}

export interface ModesStore extends Store {
  /** The cutover's moving parts (status, tests). */
  readonly cutover: { mirror: Mirror; shadow: ShadowReads; modes: Record<StoreRepositories, StorageMode> };
}

export interface ModesStoreOptions {
  config: Config;
  json: Store;
  postgres: Store;
  db: Database;
  logger: Logger;
}

/**
 * A Store whose repositories run in their own modes (seed 002's hybrid
 * option; STORAGE_MODE and STORAGE_<NAME>): `json` and `postgres` use that
 * store's repository, `dual` and `postgres-fallback` the composition of both
 * (compose.ts). The journal left by an earlier run is replayed before the
 * store is returned (when PostgreSQL answers; otherwise in the background).
 *
 * Idempotency keys stay in the JSON files while any repository still writes
 * them (the key and the JSON write commit together there); the write itself
 * goes through the composed repositories, so it is mirrored like any other.
 */
export async function createModesStore(options: ModesStoreOptions): Promise<ModesStore> {
  const { config, json, postgres, db, logger } = options;
  const modes = storeModes(config);
  const mirror = new Mirror({ db, dataDir: config.dataDir, settings: { tierLimits: config.tierLimits }, logger });
  const shadow = new ShadowReads({ rate: config.shadowReadRate, dataDir: config.dataDir, logger });
  await mirror.start();
  await shadow.start();

  const pick = <R extends object>(name: StoreRepositories, spec: RepositorySpec<R>, jsonRepo: R, postgresRepo: R): R => {
    const mode = modes[name];
    if (mode === 'json') return jsonRepo;
    if (mode === 'postgres') return postgresRepo;
    return composeRepository(spec, mode, { json: jsonRepo, postgres: postgresRepo, mirror, shadow });
  };
  const scope: StoreScope = {
    conversations: pick('conversations', conversationsSpec, json.conversations, postgres.conversations),
    usage: pick('usage', usageSpec, json.usage, postgres.usage),
  };
  const answering = modes.conversations === 'postgres' || modes.conversations === 'postgres-fallback' ? 'postgres' : 'json';
  return {
    backend: answering,
    mode: config.storageMode,
    ...scope,
    // Not composed yet: the forms repositories are placed by open.ts (json or postgres each), uploads follow their mode.
    submissions: postgres.submissions,
    jobs: postgres.jobs,
    uploadedFiles: postgres.uploadedFiles,
    audit: postgres.audit,
    uploads: modeOf(config, 'uploads') === 'json' ? json.uploads : postgres.uploads,
    idempotency: { run: (userId, key, requestHash, work) => json.idempotency.run(userId, key, requestHash, () => work(scope)) },
    cutover: { mirror, shadow, modes },
    async health(): Promise<StoreHealth> {
      // In dual mode PostgreSQL being down is not a failure: writes are journaled.
      const answeringHealth = answering === 'postgres' ? await postgres.health() : await json.health();
      return { ...answeringHealth, mode: config.storageMode };
    },
    async close(): Promise<void> {
      await shadow.close();
      await mirror.close();
      await json.close();
      await postgres.close();
    },
  };
}
