import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { connectWithConfig, databaseOptions, openDatabase } from '../src/db/connect.ts';
import { silentLogger } from '../src/log.ts';
import { REPO } from './fixtures/import-corpus.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * Configuration → connection in one place (src/db/connect.ts): every role
 * honours the pool, timeout and slow-query variables, and nothing else in
 * src/ builds a connection from the configuration by hand.
 */

const logger = silentLogger;
const configWith = (env: Record<string, string>) => loadConfig({ NODE_ENV: 'test', ...env });

describe('databaseOptions', () => {
  const config = configWith({
    DB_POOL_MAX: '7',
    DB_POOL_IDLE_S: '3',
    DB_CONNECT_TIMEOUT_S: '4',
    DB_STATEMENT_TIMEOUT_MS: '5000',
    SLOW_QUERY_MS: '250',
  });

  it('takes the pool, connect timeout and slow-query threshold from the configuration for every role', () => {
    for (const role of ['app', 'transfer', 'admin'] as const) {
      const options = databaseOptions(config, 'postgres://h/db', { role, logger });
      expect(options.pool).toEqual({ max: 7, idleSeconds: 3, connectTimeoutSeconds: 4 });
      expect(options.waitSeconds).toBe(4);
    }
    expect(databaseOptions(config, 'postgres://h/db', { role: 'transfer', logger, connections: 3 }).pool!.max).toBe(3);
  });

  it('gives each role its statement timeout and slow-query threshold', () => {
    const app = databaseOptions(config, 'postgres://h/db', { role: 'app', logger });
    expect([app.statementTimeoutMs, app.slowQueryMs, app.applicationName]).toEqual([5000, 250, 'pgferry']);
    const admin = databaseOptions(config, 'postgres://h/db', { role: 'admin', logger });
    expect([admin.statementTimeoutMs, admin.slowQueryMs]).toEqual([0, 250]);
    // Import/verify batches take seconds: floors, which a larger setting overrides.
    const transfer = databaseOptions(config, 'postgres://h/db', { role: 'transfer', logger, applicationName: 'pgferry import' });
    expect([transfer.statementTimeoutMs, transfer.slowQueryMs, transfer.applicationName]).toEqual([600_000, 60_000, 'pgferry import']);
    const patient = configWith({ DB_STATEMENT_TIMEOUT_MS: '0', SLOW_QUERY_MS: '120000' });
    const long = databaseOptions(patient, 'postgres://h/db', { role: 'transfer', logger });
    expect([long.statementTimeoutMs, long.slowQueryMs]).toEqual([0, 120_000]);
  });
});

describe('connecting through the configuration', () => {
  let target: TestDatabase;
  beforeAll(async () => {
    target = await createTestDatabase();
  });
  afterAll(async () => {
    await target?.drop();
  });

  it('opens DATABASE_URL with the configured session settings, idle timeout and slow-query log', async () => {
    const config = configWith({ DATABASE_URL: target.url, DB_POOL_IDLE_S: '1', DB_STATEMENT_TIMEOUT_MS: '4321', SLOW_QUERY_MS: '0' });
    const opened = await openDatabase(config, { role: 'app', logger, applicationName: 'pgferry connect-test' });
    try {
      const [row] = await opened.db.run(
        'probe',
        (sql) => sql<{ timeout: string; name: string }[]>`
        select current_setting('statement_timeout') as timeout, current_setting('application_name') as name`,
      );
      expect(row).toEqual({ timeout: '4321ms', name: 'pgferry connect-test' });
      expect(opened.db.slowQueries.map((q) => q.label)).toContain('probe'); // SLOW_QUERY_MS=0: everything is slow

      // DB_POOL_IDLE_S=1: the idle connection is closed by the pool soon after.
      const sessions = () => target.db.sql<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity where application_name = 'pgferry connect-test'`;
      expect((await sessions())[0]!.n).toBe(1);
      await sleep(2500);
      expect((await sessions())[0]!.n).toBe(0);
    } finally {
      await opened.close();
    }
  });

  it('connects a resolved URL (the import worker) with the same settings', async () => {
    const config = configWith({ DB_STATEMENT_TIMEOUT_MS: '700000' });
    const db = await connectWithConfig(config, target.url, { role: 'transfer', logger });
    try {
      const [row] = await db.sql<{ timeout: string }[]>`select current_setting('statement_timeout') as timeout`;
      expect(row!.timeout).toBe('700s');
    } finally {
      await db.close();
    }
  });
});

describe('src/', () => {
  async function sources(dir: string): Promise<string[]> {
    const entries = await readdir(dir, { withFileTypes: true, recursive: true });
    return entries.filter((e) => e.isFile() && e.name.endsWith('.ts')).map((e) => path.join(e.parentPath, e.name));
  }

  it('builds connections from the configuration only in src/db', async () => {
    const offenders: string[] = [];
    for (const file of await sources(path.join(REPO, 'src'))) {
      const rel = path.relative(REPO, file);
      if (rel.startsWith(`src${path.sep}db${path.sep}`)) continue;
      const text = await readFile(file, 'utf8');
      // (A scratch database for schema verify, or pg_dump's version probe, connects by URL: that is not configuration.)
      if (/\bconnectDatabase\(|\bresolveDatabaseUrl\(/.test(text.replace(/^\s*\*.*$/gm, ''))) offenders.push(rel);
    }
    expect(offenders).toEqual([]);
  });
});
