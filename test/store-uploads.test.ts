import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createJsonStore } from '../src/store/json/index.ts';
import { createPostgresStore } from '../src/store/postgres/index.ts';
import { runUploadsContract } from './contract/uploads-contract.ts';
import { createTestDatabase } from './helpers/db.ts';

runUploadsContract('json', async ({ clock, tierLimits }) => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-uploads-json-'));
  return {
    store: createJsonStore({ dataDir, tierLimits, clock: clock.now }),
    cleanup: () => rm(dataDir, { recursive: true, force: true }),
  };
});

runUploadsContract('postgres', async ({ clock, tierLimits }) => {
  const testDb = await createTestDatabase();
  return { store: createPostgresStore({ db: testDb.db, tierLimits, clock: clock.now }), cleanup: () => testDb.drop() };
});
