import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { cutoverStatus } from '../src/cutover/status.ts';
import { startRun } from '../src/runs/record.ts';
import { writeJsonFileAtomic } from '../src/store/json/files.ts';
import { Journal } from '../src/store/modes/journal.ts';
import { shadowFilePath } from '../src/store/modes/shadow.ts';
import { runCli } from './helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/** `pgferry cutover status`: read from shared state (DATA_DIR files, PostgreSQL tables), with advice. */
describe('cutover status', () => {
  let testDb: TestDatabase;
  let dataDir = '';
  beforeAll(async () => {
    testDb = await createTestDatabase();
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-status-'));
  });
  afterAll(async () => {
    await testDb.drop();
    await rm(dataDir, { recursive: true, force: true });
  });
  const config = (env: Record<string, string> = {}) =>
    loadConfig({ DATA_DIR: dataDir, DATABASE_URL: testDb.url, STORAGE_MODE: 'dual', ...env });

  it('dual with no verify yet: phase, empty journal, no sync, advice to backfill', async () => {
    const status = await cutoverStatus(config({ STORAGE_USAGE: 'json' }), testDb.db);
    expect(status.repositories.map((r) => [r.name, r.mode])).toEqual([
      ['conversations', 'dual'],
      ['usage', 'json'],
      ['submissions', 'dual'],
      ['jobs', 'dual'],
      ['uploadedFiles', 'dual'],
      ['audit', 'dual'],
      ['uploads', 'json'], // no cutover mode for uploads: they stay on the files
    ]);
    expect(status.journal).toEqual({ depth: 0, oldestAt: null });
    expect(status.sync).toEqual([]); // migration 0007 made sync_state; no sync has run
    expect(status.lastVerify).toBeNull();
    expect(status.advice.join('\n')).toMatch(/STORAGE_MODE=dual/); // usage is still on json: phase 0 → 1 first
    const dualOnly = await cutoverStatus(config(), testDb.db);
    expect(dualOnly.advice.join('\n')).toMatch(/pgferry import --from .* then pgferry verify/);
  });

  it('reports journal depth, shadow mismatches, sync_state rows and the age of the last verify', async () => {
    const journal = new Journal(dataDir);
    await journal.append([{ kind: 'conversations', rel: 'conversations/u/c.json' }]);
    await journal.close();
    await writeJsonFileAtomic(shadowFilePath(dataDir), {
      updatedAt: new Date().toISOString(),
      repositories: {
        conversations: { compared: 50, mismatches: 2, errors: 0, lastMismatch: { method: 'get', at: 'x', difference: 'title' } },
      },
    });
    const verify = await startRun(testDb.db, { command: 'verify', source: dataDir });
    await verify.finish({ exitCode: 0, counts: {} });
    await testDb.db.sql`update runs set finished_at = now() - interval '3 days' where command = 'verify'`;
    await testDb.db.sql`insert into sync_state (source_dir, lag_ms) values ('./data', 1200)`;

    const status = await cutoverStatus(config(), testDb.db);
    expect(status.journal.depth).toBe(1);
    expect(status.repositories.find((r) => r.name === 'conversations')?.journalDepth).toBe(1);
    expect(status.repositories.find((r) => r.name === 'usage')?.journalDepth).toBe(0);
    expect(status.repositories[0]!.shadow).toMatchObject({ compared: 50, mismatches: 2 });
    expect(status.sync).toEqual([expect.objectContaining({ source_dir: './data', lag_ms: 1200 })]);
    expect(status.lastVerify).toMatchObject({ clean: true });
    expect(status.lastVerify!.ageHours).toBeGreaterThanOrEqual(72);
    const advice = status.advice.join('\n');
    expect(advice).toMatch(/1 write\(s\) wait in the journal/);
    expect(advice).toMatch(/shadow reads of conversations found 2 mismatch/);
    expect(advice).toMatch(/verify is 3 days old: run pgferry verify/);

    const cli = await runCli(['cutover', 'status', '--json'], { DATA_DIR: dataDir, DATABASE_URL: testDb.url, STORAGE_MODE: 'dual' });
    expect(cli.code).toBe(1); // the journal and the mismatches hold the next step back
    expect(JSON.parse(cli.stdout)).toMatchObject({ storageMode: 'dual', journal: { depth: 1 } });
    const text = await runCli(['cutover', 'status'], { DATA_DIR: dataDir, DATABASE_URL: testDb.url, STORAGE_MODE: 'dual' });
    expect(text.stdout).toMatch(/conversations .*1 dual/);
    expect(text.stdout).toMatch(/last verify: clean/);
  }, 60_000);

  it('has --help', async () => {
    const help = await runCli(['cutover', 'status', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--json/);
  });
});

describe('cutover advice from the run history', () => {
  let testDb: TestDatabase;
  let dataDir: string;
  beforeAll(async () => {
    testDb = await createTestDatabase();
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-status-runs-'));
  });
  afterAll(async () => {
    await testDb.drop();
    await rm(dataDir, { recursive: true, force: true });
  });
  const config = () => loadConfig({ DATA_DIR: dataDir, DATABASE_URL: testDb.url, STORAGE_MODE: 'postgres' });

  it('says an import is running, then that it failed, then asks for a verify before archiving', async () => {
    const running = await startRun(testDb.db, { command: 'import', source: dataDir });
    expect((await cutoverStatus(config(), testDb.db)).advice[0]).toMatch(/an import is running \(run #\d+\)/);
    await running.finish({ exitCode: 1, counts: {} });
    const failed = await cutoverStatus(config(), testDb.db);
    expect(failed.lastImport).toMatchObject({ status: 'failed' });
    expect(failed.advice[0]).toMatch(/did not finish cleanly: read its problems \(pgferry runs \d+\)/);
    expect(failed.advice.join('\n')).toMatch(/run pgferry verify --from .* before archiving/);
  });
});
