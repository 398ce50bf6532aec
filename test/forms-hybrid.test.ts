import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openStore } from '../src/store/open.ts';
import type { Store } from '../src/store/types.ts';
import { TestClock } from './contract/clock.ts';
import { runFormsContract } from './contract/forms-contract.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * Seed 002's hybrid option through openStore: STORAGE_JOBS=json keeps jobs
 * as the app's JSON files while submissions, uploaded files and the audit
 * log are on PostgreSQL. The same forms contract holds across the two
 * backends (isolation through the submission, the state machine, a delete
 * taking the JSON jobs too, one audit entry per change).
 */

const clock = new TestClock();
let testDb: TestDatabase;
let dataDir: string;
let store: Store;

beforeAll(async () => {
  testDb = await createTestDatabase({ prefix: 'hybrid' });
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-hybrid-'));
  store = await openStore({
    env: { DATABASE_URL: testDb.url, DATA_DIR: dataDir, STORAGE_JOBS: 'json', LOG_LEVEL: 'silent' },
    clock: clock.now,
  });
});
afterAll(async () => {
  await store?.close();
  await testDb?.drop();
  await rm(dataDir, { recursive: true, force: true });
});
beforeEach(() => clock.reset());

describe('hybrid: STORAGE_JOBS=json, the rest on PostgreSQL', () => {
  runFormsContract(() => store, clock);

  it('keeps jobs in DATA_DIR/jobs and submissions, files and audit in PostgreSQL', async () => {
    const alice = { userId: 'hybrid-alice' };
    const s = await store.submissions.create(alice, { module: 'civil', formData: { fields: { project_name: 'Tower' } } });
    const job = await store.jobs.create(alice, s.id);
    expect(await readdir(path.join(dataDir, 'jobs'))).toContain(`${job.id}.json`);
    const [jobRows] = await testDb.db.sql`select count(*)::int as n from jobs`;
    expect(jobRows?.n).toBe(0);
    const [subRow] = await testDb.db.sql`select count(*)::int as n from submissions where submission_id = ${s.id}`;
    expect(subRow?.n).toBe(1);
    const [auditRow] = await testDb.db.sql`select count(*)::int as n from audit_logs where resource_id = ${job.id}`;
    expect(auditRow?.n).toBe(1);
    await expect(readdir(path.join(dataDir, 'submissions'))).rejects.toThrow();
  });
});

describe('hybrid configuration errors', () => {
  it('refuses uploaded files on another backend than their submissions', async () => {
    await expect(
      openStore({ env: { DATABASE_URL: testDb.url, DATA_DIR: dataDir, STORAGE_UPLOADED_FILES: 'json', LOG_LEVEL: 'silent' } }),
    ).rejects.toMatchObject({ code: 'CONFIG_ERROR', details: { variable: 'STORAGE_UPLOADED_FILES' } });
  });

  it('runs a forms repository in a cutover mode: STORAGE_JOBS=dual writes the JSON job and mirrors it', async () => {
    const other = await openStore({ env: { DATABASE_URL: testDb.url, DATA_DIR: dataDir, STORAGE_JOBS: 'dual', LOG_LEVEL: 'silent' } });
    try {
      const alice = { userId: 'hybrid-dual' };
      const s = await other.submissions.create(alice, { module: 'civil', formData: { site_name: 'Dual' } });
      const job = await other.jobs.create(alice, s.id);
      expect(await readdir(path.join(dataDir, 'jobs'))).toContain(`${job.id}.json`);
      const [row] = await testDb.db.sql`select status from jobs where job_id = ${job.id}`;
      expect(row?.status).toBe('started');
    } finally {
      await other.close();
    }
  });

  it('puts only the audit log on PostgreSQL when STORAGE_MODE=json and STORAGE_AUDIT=postgres', async () => {
    const other = await openStore({
      env: { DATABASE_URL: testDb.url, DATA_DIR: dataDir, STORAGE_MODE: 'json', STORAGE_AUDIT: 'postgres', LOG_LEVEL: 'silent' },
    });
    try {
      expect(other.backend).toBe('json');
      await other.audit.record({ userId: 'mixed', action: 'login' });
      const [row] = await testDb.db.sql`select count(*)::int as n from audit_logs where user_id = 'mixed'`;
      expect(row?.n).toBe(1);
    } finally {
      await other.close();
    }
  });
});
