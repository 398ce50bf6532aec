import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Migrator } from '../src/schema/migrator.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

describe('test harness', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase();
  });
  afterAll(async () => testDb?.drop());

  it('gives each file a database cloned from the migrated template', async () => {
    const status = await new Migrator(testDb.db.sql).status();
    expect(status.pending).toEqual([]);
    expect(status.current).toBe(status.latest);
    const [row] = await testDb.db.sql`select current_database() as name`;
    expect(row?.name).toBe(testDb.name);
  });
});
