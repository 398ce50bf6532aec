import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/log.ts';
import { openStore } from '../src/store/open.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

function captureLogger() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { logger: createLogger({ level: 'debug', destination }), lines };
}

describe('openStore selection', () => {
  let dataDir: string;
  let testDb: TestDatabase;
  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-open-'));
    testDb = await createTestDatabase();
  });
  afterAll(async () => {
    await testDb?.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('uses JSON files when DATABASE_URL is unset, and says so', async () => {
    const { logger, lines } = captureLogger();
    const store = await openStore({ env: { DATA_DIR: dataDir }, logger });
    expect(store.backend).toBe('json');
    expect(store.mode).toBe('json');
    await store.close();
    expect(lines.join('')).toContain('storage: JSON files');
  });

  it('uses PostgreSQL when DATABASE_URL is set and never logs the password', async () => {
    const { logger, lines } = captureLogger();
    const url = new URL(testDb.url);
    const store = await openStore({ env: { DATABASE_URL: testDb.url, DATA_DIR: dataDir }, logger });
    expect(store.backend).toBe('postgres');
    expect((await store.health()).ok).toBe(true);
    await store.close();
    const log = lines.join('');
    expect(log).toContain('storage: PostgreSQL');
    if (url.password) expect(log).not.toContain(decodeURIComponent(url.password));
  });

  it('falls back to JSON loudly in development when PostgreSQL is unreachable', async () => {
    const { logger, lines } = captureLogger();
    const store = await openStore({
      env: {
        DATABASE_URL: 'postgres://u:hunter2secret@127.0.0.1:1/db',
        DATA_DIR: dataDir,
        DB_CONNECT_TIMEOUT_S: '1',
        NODE_ENV: 'development',
      },
      logger,
    });
    expect(store.backend).toBe('json');
    await store.close();
    const log = lines.join('');
    expect(log).toContain('FALLING BACK TO JSON');
    expect(log).not.toContain('hunter2secret');
  });

  it('fails in production when PostgreSQL is unreachable, without leaking the password', async () => {
    const promise = openStore({
      env: {
        DATABASE_URL: 'postgres://u:hunter2secret@127.0.0.1:1/db',
        DATA_DIR: dataDir,
        DB_CONNECT_TIMEOUT_S: '1',
        NODE_ENV: 'production',
        LOG_LEVEL: 'silent',
      },
    });
    await expect(promise).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(promise).rejects.not.toThrow(/hunter2secret/);
  });

  it('names the variable in configuration errors', async () => {
    await expect(openStore({ env: { STORAGE_MODE: 'sideways' } })).rejects.toThrow(/STORAGE_MODE/);
    await expect(openStore({ env: { DATABASE_URL: 'mysql://x' } })).rejects.toThrow(/DATABASE_URL/);
  });
});
