import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig, type StorageMode } from '../src/config.ts';
import { isPgFerryError } from '../src/errors.ts';
import { type ModesStore, storeModes } from '../src/store/modes/index.ts';
import { openStore } from '../src/store/open.ts';
import type { Store } from '../src/store/types.ts';
import { runVerify } from '../src/transfer/verify.ts';
import { TestClock } from './contract/clock.ts';
import { runFormsContract } from './contract/forms-contract.ts';
import { runUploadsContract } from './contract/uploads-contract.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * The forms repositories in the cutover modes, through openStore with the
 * default per-repository modes (STORAGE_MODE alone; uploads, which cannot be
 * mirrored, stay on JSON): the forms contract holds, and what dual wrote to
 * the JSON files is in PostgreSQL with `verify` clean.
 */

for (const mode of ['dual', 'postgres-fallback'] as const satisfies StorageMode[]) {
  describe(`forms in ${mode}`, () => {
    const clock = new TestClock();
    let testDb: TestDatabase;
    let dataDir: string;
    let store: Store;
    beforeAll(async () => {
      testDb = await createTestDatabase({ prefix: `modes_forms_${mode.slice(0, 4).replace('-', '')}` });
      dataDir = await mkdtemp(path.join(os.tmpdir(), `pgferry-modes-forms-${mode}-`));
      store = await openStore({
        env: { DATABASE_URL: testDb.url, DATA_DIR: dataDir, STORAGE_MODE: mode, LOG_LEVEL: 'silent' },
        clock: clock.now,
      });
    });
    afterAll(async () => {
      await store?.close();
      await testDb?.drop();
      await rm(dataDir, { recursive: true, force: true });
    });
    beforeEach(() => clock.reset());

    runFormsContract(() => store, clock);

    it('mirrors submissions, jobs and uploaded files: verify is clean after the writes', async () => {
      const alice = { userId: `mirror-${mode.slice(0, 4).replace('-', '')}` };
      const kept = await store.submissions.create(alice, { module: 'civil', formData: { site_name: 'Kept', visit_date: '2025-12-01' } });
      const gone = await store.submissions.create(alice, { module: 'hvac_mep', formData: { site_name: 'Gone' } });
      await store.submissions.updateStatus(alice, kept.id, 'completed');
      await store.uploadedFiles.add(alice, kept.id, { field: 'photo', url: 'https://example.com/p.jpg', fileType: 'photo' });
      const job = await store.jobs.create(alice, kept.id);
      await store.jobs.progress(alice, job.id, 40);
      await store.jobs.finish(alice, job.id, { excel_url: 'https://example.com/r.xlsx' });
      const doomed = await store.jobs.create(alice, gone.id);
      await store.submissions.delete(alice, gone.id);

      const rows = await testDb.db.sql<{ submission_id: string; status: string }[]>`
        select submission_id, status from submissions where submission_id in (${kept.id}, ${gone.id})`;
      expect(rows).toEqual([{ submission_id: kept.id, status: 'completed' }]);
      const jobs = await testDb.db.sql<{ job_id: string; status: string; linked: boolean }[]>`
        select job_id, status, submission_id is not null as linked from jobs where job_id in (${job.id}, ${doomed.id})`;
      expect(jobs).toEqual([{ job_id: job.id, status: 'done', linked: true }]);

      const summary = await runVerify({ root: dataDir, db: testDb.db, kinds: ['submissions', 'jobs'], readers: 0 });
      expect(summary.ok, JSON.stringify(summary.kinds)).toBe(true);
    });
  });
}

describe('uploads in the cutover', () => {
  it('refuses STORAGE_UPLOADS=dual or postgres-fallback with a CONFIG_ERROR naming STORAGE_UPLOADS', async () => {
    for (const env of [
      { STORAGE_MODE: 'dual', STORAGE_UPLOADS: 'dual' },
      { STORAGE_MODE: 'postgres', STORAGE_UPLOADS: 'postgres-fallback' },
    ]) {
      const error = await openStore({ env: { ...env, DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', LOG_LEVEL: 'silent' } }).catch(
        (e: unknown) => e,
      );
      expect(isPgFerryError(error) && error.code).toBe('CONFIG_ERROR');
      expect((error as Error).message).toMatch(/^STORAGE_UPLOADS: .*set STORAGE_UPLOADS=json/);
    }
  });

  it('keeps uploads on the JSON files when only STORAGE_MODE names a cutover mode', () => {
    const config = loadConfig({ DATA_DIR: '/tmp/x', DATABASE_URL: 'postgres://a@b/c', STORAGE_MODE: 'postgres-fallback' });
    expect(storeModes(config)).toMatchObject({ submissions: 'postgres-fallback', uploads: 'json' });
    expect(storeModes({ ...config, repositoryModes: { uploads: 'postgres' } }).uploads).toBe('postgres');
  });
});

/** The uploads contract on a store whose other repositories are in a cutover mode: uploads pass through to their backend. */
for (const mode of ['dual', 'postgres-fallback'] as const satisfies StorageMode[]) {
  for (const uploads of [undefined, 'postgres'] as const) {
    runUploadsContract(`${mode}, STORAGE_UPLOADS=${uploads ?? '(unset: json)'}`, async ({ clock }) => {
      const testDb = await createTestDatabase({ prefix: 'modes_uploads' });
      const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-modes-uploads-'));
      const store = (await openStore({
        env: {
          DATABASE_URL: testDb.url,
          DATA_DIR: dataDir,
          STORAGE_MODE: mode,
          ...(uploads ? { STORAGE_UPLOADS: uploads } : {}),
          LOG_LEVEL: 'silent',
        },
        clock: clock.now,
      })) as ModesStore;
      return {
        store,
        cleanup: async () => {
          await testDb.drop();
          await rm(dataDir, { recursive: true, force: true });
        },
      };
    });
  }
}
