import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TIER_LIMITS } from '../src/config.ts';
import { createJsonStore } from '../src/store/json/index.ts';
import { createPostgresStore } from '../src/store/postgres/index.ts';
import { runCli } from './helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * `pgferry jobs purge` on the hybrid layout (jobs on JSON, the rest on
 * PostgreSQL) and `pgferry audit purge` on both backends, as processes.
 */

let testDb: TestDatabase;
let dataDir: string;
const ADMIN = { userId: 'cli-admin', admin: true };
const TEN_DAYS_AGO = () => new Date(Date.now() - 10 * 86_400_000);

beforeAll(async () => {
  testDb = await createTestDatabase({ prefix: 'formscli' });
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-forms-cli-'));
});
afterAll(async () => {
  await testDb?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('pgferry jobs purge', () => {
  it('removes finished jobs past retention and keeps a running one, on STORAGE_JOBS=json', async () => {
    // The submission lives in PostgreSQL; its jobs as the app's files in DATA_DIR/jobs.
    const pg = createPostgresStore({ db: testDb.db, tierLimits: DEFAULT_TIER_LIMITS });
    const s = await pg.submissions.create(ADMIN, { module: 'hvac_mep', formData: { site_name: 'X', items: [] } });
    const old = createJsonStore({ dataDir, tierLimits: DEFAULT_TIER_LIMITS, clock: TEN_DAYS_AGO });
    const jobFor = async (state: 'done' | 'running') => {
      const id = `job_${Math.random().toString(16).slice(2, 14).padEnd(12, '0')}`;
      await mkdir(path.join(dataDir, 'jobs'), { recursive: true });
      const created = (Date.now() - 10 * 86_400_000) / 1000;
      const doc = {
        job_id: id,
        state,
        progress: state === 'done' ? 100 : 60,
        results: [],
        meta: { submission_id: s.id, module: 'hvac_mep' },
        created_at: created,
      };
      await writeFile(
        path.join(dataDir, 'jobs', `${id}.json`),
        JSON.stringify(state === 'done' ? { ...doc, completed_at: created + 5 } : doc),
      );
      return id;
    };
    const done = await jobFor('done');
    const running = await jobFor('running');
    await old.close();

    const env = { DATABASE_URL: testDb.url, DATA_DIR: dataDir, STORAGE_JOBS: 'json', LOG_LEVEL: 'silent' };
    const result = await runCli(['jobs', 'purge', '--older-than', '7d', '--json'], env);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ purged: 1 });
    const left = await readdir(path.join(dataDir, 'jobs'));
    expect(left).toContain(`${running}.json`);
    expect(left).not.toContain(`${done}.json`);
    const [row] = await testDb.db.sql`select count(*)::int as n from audit_logs where action = 'jobs.purge'`;
    expect(row?.n).toBe(1);
    await pg.close();
  }, 60_000);

  it('explains a bad duration (exit 2) and has --help', async () => {
    const bad = await runCli(['jobs', 'purge', '--older-than', 'a week'], { DATA_DIR: dataDir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/olderThan: expected a duration such as 7d/);
    const help = await runCli(['jobs', 'purge', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--older-than');
  }, 60_000);
});

describe('pgferry audit purge', () => {
  it('purges old entries on PostgreSQL through pgferry_audit_purge', async () => {
    const old = createPostgresStore({ db: testDb.db, tierLimits: DEFAULT_TIER_LIMITS, clock: () => new Date('2020-06-01T00:00:00Z') });
    await old.audit.record({ userId: 'cli-old', action: 'login' });
    const result = await runCli(['audit', 'purge', '--before', '2021-01-01', '--json'], { DATABASE_URL: testDb.url, LOG_LEVEL: 'silent' });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ backend: 'postgres', purged: 1 });
  }, 60_000);

  it('removes whole day files on JSON', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-audit-cli-'));
    try {
      const store = createJsonStore({ dataDir: dir, tierLimits: DEFAULT_TIER_LIMITS, clock: () => new Date('2020-06-01T12:00:00Z') });
      await store.audit.record({ action: 'login' });
      await store.close();
      const later = createJsonStore({ dataDir: dir, tierLimits: DEFAULT_TIER_LIMITS, clock: () => new Date('2020-06-02T12:00:00Z') });
      await later.audit.record({ action: 'login' });
      await later.close();
      const result = await runCli(['audit', 'purge', '--before', '2020-06-02T06:00:00Z', '--json'], { DATA_DIR: dir, LOG_LEVEL: 'silent' });
      expect(JSON.parse(result.stdout)).toMatchObject({ backend: 'json', purged: 1 });
      expect(await readdir(path.join(dir, 'audit'))).toEqual(['2020-06-02.jsonl']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
