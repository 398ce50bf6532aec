import { type Config, modeOf, REPOSITORIES, type RepositoryName, type StorageMode } from '../../config.ts';
import type { Database } from '../../db/database.ts';
import { PgFerryError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { createFormsRepositories } from '../core/forms.ts';
import { createContext } from '../json/context.ts';
import { jsonFormsBackends } from '../json/forms.ts';
import { postgresFormsBackends } from '../postgres/forms.ts';
import { type Clock, type Store, type StoreHealth, type StoreScope, systemClock } from '../types.ts';
import { composeRepository, type RepositorySpec } from './compose.ts';
import { Mirror } from './mirror.ts';
import { ShadowReads } from './shadow.ts';
import { conversationsSpec, jobsSpec, submissionsSpec, uploadedFilesSpec, usageSpec } from './specs.ts';

export type { RecordRef } from './apply.ts';
export { applyRecordFiles } from './apply.ts';
export type { RepositorySpec } from './compose.ts';
export { Journal } from './journal.ts';
export { Mirror } from './mirror.ts';
export { readShadowFile, ShadowReads } from './shadow.ts';

/** Every repository of the Store has a mode (STORAGE_MODE, or STORAGE_<NAME>). */
export const STORE_REPOSITORIES: readonly RepositoryName[] = REPOSITORIES;

/** Repositories with no cutover mode (checkRepositoryModes): they take no phase, so the phase advice leaves them out. */
export const WITHOUT_CUTOVER: readonly RepositoryName[] = ['uploads'];

const isCutoverMode = (mode: StorageMode) => mode === 'dual' || mode === 'postgres-fallback';

/**
 * The mode each of the Store's repositories runs in: STORAGE_<NAME>, else
 * STORAGE_MODE — except uploads, which have no cutover mode (see
 * checkRepositoryModes): when STORAGE_MODE is `dual` or `postgres-fallback`
 * and STORAGE_UPLOADS is unset, they stay on the JSON files, where every
 * upload written so far is, until STORAGE_MODE=postgres (or STORAGE_UPLOADS).
 */
export function storeModes(config: Config): Record<RepositoryName, StorageMode> {
  const modes = Object.fromEntries(REPOSITORIES.map((name) => [name, modeOf(config, name)])) as Record<RepositoryName, StorageMode>;
  if (isCutoverMode(modes.uploads) && !config.repositoryModes.uploads) modes.uploads = 'json';
  return modes;
}

/**
 * The combinations the Store cannot run, refused before anything opens:
 *
 * - uploads in `dual` or `postgres-fallback`: the mirror copies record files
 *   through a transfer kind, and the JSON layout of uploads
 *   (DATA_DIR/uploads/<user>.json) has none (the `uploads` kind reads seed
 *   000's single store file). Uploads stay on one backend during the cutover.
 * - uploaded files on another mode than submissions: on JSON they live inside
 *   the submission's document, so they are written (and mirrored) with it.
 */
export function checkRepositoryModes(config: Config): void {
  const uploads = config.repositoryModes.uploads;
  if (uploads && isCutoverMode(uploads)) {
    throw new PgFerryError(
      'CONFIG_ERROR',
      `STORAGE_UPLOADS: "${uploads}" is not available for uploads (their JSON files have no transfer kind to mirror them); ` +
        'set STORAGE_UPLOADS=json to keep uploads on the JSON files during the cutover (the default there), or STORAGE_UPLOADS=postgres',
      { variable: 'STORAGE_UPLOADS' },
    );
  }
  const modes = storeModes(config);
  const submissions = modes.submissions;
  if (modes.uploadedFiles !== submissions) {
    throw new PgFerryError(
      'CONFIG_ERROR',
      `STORAGE_UPLOADED_FILES: uploaded files live with their submissions; set it to "${submissions}" like submissions, or leave it unset`,
      { variable: 'STORAGE_UPLOADED_FILES' },
    );
  }
}

export interface ModesStore extends Store {
  /** The cutover's moving parts (status, tests). */
  readonly cutover: { mirror: Mirror; shadow: ShadowReads; modes: Record<RepositoryName, StorageMode> };
}

export interface ModesStoreOptions {
  config: Config;
  json: Store;
  postgres: Store;
  db: Database;
  logger: Logger;
  clock?: Clock;
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
  checkRepositoryModes(config);
  const modes = storeModes(config);
  if (modes.uploads !== modeOf(config, 'uploads')) {
    logger.warn(
      { repository: 'uploads', mode: 'json' },
      'cutover: uploads stay on the JSON files (no cutover mode for them; STORAGE_UPLOADS)',
    );
  }
  const mirror = new Mirror({ db, dataDir: config.dataDir, settings: { tierLimits: config.tierLimits }, logger });
  const shadow = new ShadowReads({ rate: config.shadowReadRate, dataDir: config.dataDir, logger });
  await mirror.start();
  await shadow.start();

  const pick = <R extends object>(name: RepositoryName, spec: RepositorySpec<R>, jsonRepo: R, postgresRepo: R): R => {
    const mode = modes[name];
    if (mode === 'json') return jsonRepo;
    if (mode === 'postgres') return postgresRepo;
    return composeRepository(spec, mode, { json: jsonRepo, postgres: postgresRepo, mirror, shadow });
  };
  const scope: StoreScope = {
    conversations: pick('conversations', conversationsSpec, json.conversations, postgres.conversations),
    usage: pick('usage', usageSpec, json.usage, postgres.usage),
  };
  const forms = formsWriteSide(options, modes);
  // On json or postgres a forms repository is the write side's own (hybrid-aware: a submission's delete removes its
  // jobs wherever they are); in a cutover mode, that composed with PostgreSQL's.
  const pickForms = <R extends object>(name: RepositoryName, spec: RepositorySpec<R>, writeSide: R, postgresRepo: R): R =>
    isCutoverMode(modes[name]) ? pick(name, spec, writeSide, postgresRepo) : writeSide;
  const answering = modes.conversations === 'postgres' || modes.conversations === 'postgres-fallback' ? 'postgres' : 'json';
  return {
    backend: answering,
    mode: config.storageMode,
    ...scope,
    submissions: pickForms('submissions', submissionsSpec(forms.repositories.jobs), forms.repositories.submissions, postgres.submissions),
    jobs: pickForms('jobs', jobsSpec(config.dataDir), forms.repositories.jobs, postgres.jobs),
    uploadedFiles: pickForms('uploadedFiles', uploadedFilesSpec, forms.repositories.uploadedFiles, postgres.uploadedFiles),
    // Append-only and never mirrored: see formsWriteSide.
    audit: forms.repositories.audit,
    uploads: modes.uploads === 'json' ? json.uploads : postgres.uploads,
    idempotency: { run: (userId, key, requestHash, work) => json.idempotency.run(userId, key, requestHash, () => work(scope)) },
    database: postgres.database,
    cutover: { mirror, shadow, modes },
    async health(): Promise<StoreHealth> {
      // In dual mode PostgreSQL being down is not a failure: writes are journaled.
      const answeringHealth = answering === 'postgres' ? await postgres.health() : await json.health();
      return { ...answeringHealth, mode: config.storageMode };
    },
    async close(): Promise<void> {
      await shadow.close();
      await mirror.close();
      await forms.drain();
      await json.close();
      await postgres.close();
    },
  };
}

/**
 * The forms repositories the writes run on, one backend each (the core keeps
 * a change and its audit entry together when they share a backend, and
 * records the entry right after when they do not):
 *
 * - submissions, jobs, uploaded files: the JSON files in every mode but
 *   `postgres` — in `dual` and `postgres-fallback` the JSON record is written
 *   first and then mirrored (compose.ts), so a rollback loses nothing.
 * - audit: an append-only log with no record file to mirror (JSON Lines per
 *   day on JSON). It is written where it is read: the JSON log in `json` and
 *   `dual` (phase 1: the files are the truth), PostgreSQL's audit_logs in
 *   `postgres-fallback` and `postgres`. The JSON-era log is not copied; it
 *   stays in DATA_DIR/audit (and in the archive).
 */
function formsWriteSide(options: ModesStoreOptions, modes: Record<RepositoryName, StorageMode>) {
  const { config, db, logger, clock } = options;
  const ctx = createContext({ dataDir: config.dataDir, tierLimits: config.tierLimits, clock: clock ?? systemClock, logger, lock: {} });
  const onJson = jsonFormsBackends(ctx);
  const onPostgres = postgresFormsBackends({ db, clock });
  const writesOnJson = (name: RepositoryName) => modes[name] !== 'postgres';
  const repositories = createFormsRepositories({
    submissions: writesOnJson('submissions') ? onJson.submissions : onPostgres.submissions,
    jobs: writesOnJson('jobs') ? onJson.jobs : onPostgres.jobs,
    files: writesOnJson('uploadedFiles') ? onJson.files : onPostgres.files,
    audit: modes.audit === 'json' || modes.audit === 'dual' ? onJson.audit : onPostgres.audit,
  });
  return { repositories, drain: () => ctx.drain() };
}
