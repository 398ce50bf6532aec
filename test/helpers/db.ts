import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { inject } from 'vitest';
import { Database, withDatabase } from '../../src/db/database.ts';

export { withDatabase };

export interface TestDatabase {
  /** Connection string of the fresh database (migrated to the latest schema). */
  url: string;
  name: string;
  /** A pgferry Database on it (closed by drop()). */
  db: Database;
  drop(): Promise<void>;
}

export function adminUrl(): string {
  return inject('pgAdminUrl');
}

async function createDatabase(name: string, template: string | undefined): Promise<void> {
  const admin = postgres(adminUrl(), { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${name}${template ? ` template ${template}` : ''}`);
  } finally {
    await admin.end();
  }
}

export async function dropDatabase(name: string): Promise<void> {
  const admin = postgres(adminUrl(), { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
  } finally {
    await admin.end();
  }
}

/**
 * A database of the test file's own, cloned from the migrated template (or
 * empty with `{ empty: true }`, for migration tests).
 */
export async function createTestDatabase(options: { empty?: boolean; prefix?: string } = {}): Promise<TestDatabase> {
  const name = `${options.prefix ?? 't'}_${randomBytes(6).toString('hex')}`;
  await createDatabase(name, options.empty ? undefined : inject('pgTemplate'));
  const url = withDatabase(adminUrl(), name);
  const db = new Database({ url, pool: { max: 20, idleSeconds: 5, connectTimeoutSeconds: 10 } });
  return {
    url,
    name,
    db,
    drop: async () => {
      await db.close();
      await dropDatabase(name);
    },
  };
}
