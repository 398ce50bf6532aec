import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
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
      clock: clock.now,
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

describe('cutover modes beyond the contract', () => {
  it('dual: shadow reads compare every read (SHADOW_READ_RATE=1) and find the stores agreeing; per-repository modes', async () => {
    const testDb = await createTestDatabase();
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-shadow-'));
    try {
      const config = loadConfig({
        DATA_DIR: dataDir,
        DATABASE_URL: testDb.url,
        STORAGE_MODE: 'dual',
        STORAGE_USAGE: 'postgres',
        SHADOW_READ_RATE: '1',
      });
      const logger = createLogger({ level: 'silent' });
      const store = await createModesStore({
        config,
        json: createJsonStore({ dataDir, tierLimits: config.tierLimits }),
        postgres: createPostgresStore({ db: testDb.db, tierLimits: config.tierLimits }),
        db: testDb.db,
        logger,
      });
      expect(store.cutover.modes).toMatchObject({ conversations: 'dual', usage: 'postgres', submissions: 'dual', uploads: 'json' });
      const c = await store.conversations.create('shadow-user', { title: 'compared' });
      await store.conversations.addUserMessage('shadow-user', c.id, 'hello');
      await store.conversations.get('shadow-user', c.id);
      await store.conversations.list('shadow-user');
      await store.conversations.search('shadow-user', 'hel');
      await store.usage.consume('shadow-user');
      await store.cutover.shadow.settle();
      expect(store.cutover.shadow.snapshot().conversations).toMatchObject({ compared: 3, mismatches: 0, errors: 0 });
      // usage runs on PostgreSQL alone: nothing of it in the JSON files.
      const [row] = await testDb.db.sql<{ n: number }[]>`select daily_used as n from usage where user_id = 'shadow-user'`;
      expect(row?.n).toBe(1);
      await expect(stat(path.join(dataDir, 'usage', 'shadow-user', 'usage.json'))).rejects.toThrow();
      await store.close();
      expect(JSON.parse(await readFile(path.join(dataDir, '.pgferry', 'cutover', 'shadow-reads.json'), 'utf8'))).toMatchObject({
        repositories: { conversations: { compared: 3, mismatches: 0 } },
      });
    } finally {
      await testDb.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
