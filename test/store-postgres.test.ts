import { createPostgresStore } from '../src/store/postgres/index.ts';
import { runStoreContract } from './contract/store-contract.ts';
import { createTestDatabase } from './helpers/db.ts';

runStoreContract('postgres', async ({ clock, tierLimits }) => {
  const testDb = await createTestDatabase();
  return {
    store: createPostgresStore({ db: testDb.db, tierLimits, clock: clock.now }),
    cleanup: () => testDb.drop(),
  };
});
