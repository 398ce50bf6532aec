import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type StorageMode } from '../src/config.ts';
import { createLogger } from '../src/log.ts';
import { createJsonStore } from '../src/store/json/index.ts';
import { createModesStore } from '../src/store/modes/index.ts';
import { createPostgresStore } from '../src/store/postgres/index.ts';
import { runStoreContract } from './contract/store-contract.ts';
import { createTestDatabase } from './helpers/db.ts';

/** The one Store contract, in the cutover modes: JSON and PostgreSQL composed (store/modes/). */
for (const mode of ['dual', 'postgres-fallback'] as const satisfies StorageMode[]) {
  runStoreContract(mode, async ({ clock, tierLimits }) => {
    const testDb = await createTestDatabase();
    const dataDir = await mkdtemp(path.join(os.tmpdir(), `pgferry-contract-${mode}-`));
    const config = loadConfig({ DATA_DIR: dataDir, DATABASE_URL: testDb.url, STORAGE_MODE: mode, SHADOW_READ_RATE: '1' }, { tierLimits });
    const logger = createLogger({ level: 'silent' });
    const store = await createModesStore({
      config,
      json: createJsonStore({ dataDir, tierLimits, clock: clock.now }),
      postgres: createPostgresStore({ db: testDb.db, tierLimits, clock: clock.now }),
      db: testDb.db,
      logger,
    });
    return {
      store,
      cleanup: async () => {
        await testDb.drop();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  });
}
