import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_TIER_LIMITS } from '../src/config.ts';
import { Sync, type SyncOptions, type SyncSummary } from '../src/sync/sync.ts';
import { ProblemReport } from '../src/transfer/report.ts';
import { runVerify } from '../src/transfer/verify.ts';
import { BIN, REPO } from './fixtures/import-corpus.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * `pgferry sync` against the seed apps' real writing pattern: a Python
 * process saving with open('w') + json.dump (no lock, no rename) many times a
 * second while sync follows the tree. Nothing torn is ever loaded (no file is
 * rejected), deletions reach the database, the lag stays within seconds, a
 * restart reads only what changed, and `verify` is clean at the end.
 */

const PYTHON = process.env.PGFERRY_TEST_PYTHON ?? '/usr/bin/python3';
const WRITER = fileURLToPath(new URL('./fixtures/python/sync_writer.py', import.meta.url));

let tmp: string;
/** The current test's database: one tree per database, as in production. */
let db: TestDatabase;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-sync-'));
});

beforeEach(async () => {
  db = await createTestDatabase();
});

afterEach(async () => {
  await db?.drop();
});

afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

function runWriter(dir: string, seconds: number, rate: number, deleteEvery = 0): Promise<{ writes: number; deletes: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [WRITER, dir, String(seconds), String(rate), '7', String(deleteEvery)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => {
      out += c;
    });
    child.stderr.on('data', (c) => {
      err += c;
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`writer exited ${code}: ${err}`))));
  });
}

function startSync(dir: string, options: Partial<SyncOptions> = {}): { done: Promise<SyncSummary>; stop: () => void } {
  const controller = new AbortController();
  const sync = new Sync({
    root: dir,
    db: db.db,
    tierLimits: DEFAULT_TIER_LIMITS,
    follow: true,
    rescanMs: 2000,
    reportMs: 500,
    signal: controller.signal,
    ...options,
  });
  return { done: sync.run(), stop: () => controller.abort() };
}

async function verifyClean(dir: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const report = new ProblemReport(undefined, { keep: 5 });
    const summary = await runVerify({ root: dir, db: db.db, readers: 0, report });
    if (!summary.ok && Date.now() > deadline) console.error(JSON.stringify(summary.kinds), JSON.stringify(report.first));
    if (summary.ok || Date.now() > deadline) return summary.ok;
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function realDir(name: string): Promise<string> {
  const dir = path.join(tmp, name);
  await fs.mkdir(path.join(dir, 'conversations'), { recursive: true });
  await fs.mkdir(path.join(dir, 'usage'), { recursive: true });
  return fs.realpath(dir);
}

describe('sync --follow with a Python writer', () => {
  it('loads every write within seconds, never a torn file, deletions included; verify is clean with the writer stopped', async () => {
    const dir = await realDir('live');
    const lags: number[] = [];
    const sync = startSync(dir, { onCommit: (c) => lags.push(c.lagMs) });
    // 80 saves a second for 6 s, every 40th a deletion.
    const written = await runWriter(dir, 6, 80, 40);
    expect(written.writes).toBeGreaterThan(300);
    expect(written.deletes).toBeGreaterThan(0);
    // The writer recreates ids it deleted, so some deletions never outlive a sync pass: two more, for certain.
    const dave = path.join(dir, 'conversations', 'dave');
    await fs.mkdir(dave);
    await fs.writeFile(
      path.join(dave, 'gone-1.json'),
      JSON.stringify({ id: 'gone-1', user_id: 'dave', created_at: '2026-12-01T10:00:00', messages: [] }),
    );
    expect(await verifyClean(dir, 15_000)).toBe(true);
    await fs.rm(path.join(dave, 'gone-1.json'));
    expect(await verifyClean(dir, 15_000)).toBe(true);
    sync.stop();
    const summary = await sync.done;
    expect(summary.problems.first).toEqual([]);
    expect(summary.errors).toBe(0);
    expect(summary.imported).toBeGreaterThan(50);
    expect(summary.deleted).toBeGreaterThan(0);
    expect(summary.lagP99Ms!).toBeLessThan(10_000); // seconds even on a loaded 2-core machine

    const [state] = await db.db.sql<{ following: boolean; pending: number; errors: string; lag_p99_ms: number }[]>`
      select following, pending, errors, lag_p99_ms from sync_state where source_dir = ${dir}`;
    expect(state).toMatchObject({ following: false, pending: 0, errors: 0 });
    expect(state!.lag_p99_ms).toBeGreaterThan(0);
  }, 60_000);

  it('resumes after a restart: only files changed while it was stopped are read', async () => {
    const dir = await realDir('resume');
    await runWriter(dir, 1, 50);
    // Two conversations with ids of their own (the writer's ids repeat across users: those are loaded as twins).
    const mine = path.join(dir, 'conversations', 'dave');
    await fs.mkdir(mine);
    const doc = { id: 'only-a', user_id: 'dave', created_at: '2026-12-01T10:00:00', title: 'A', messages: [] };
    await fs.writeFile(path.join(mine, 'only-a.json'), JSON.stringify(doc));
    await fs.writeFile(path.join(mine, 'only-b.json'), JSON.stringify({ ...doc, id: 'only-b', title: 'B' }));
    const first = startSync(dir, { follow: false });
    const loaded = await first.done;
    expect(loaded.imported).toBeGreaterThan(5);

    const again = await startSync(dir, { follow: false }).done;
    expect(again).toMatchObject({ imported: 0, unchanged: 0, deleted: 0, errors: 0 });

    // While "down": one conversation edited, one deleted.
    await fs.writeFile(path.join(mine, 'only-a.json'), JSON.stringify({ ...doc, title: 'edited while sync was down' }));
    await fs.rm(path.join(mine, 'only-b.json'));
    await new Promise((r) => setTimeout(r, 100)); // quiet
    const resumed = await startSync(dir, { follow: false }).done;
    expect(resumed).toMatchObject({ imported: 1, unchanged: 0, deleted: 1, errors: 0 });
    expect(await verifyClean(dir, 0)).toBe(true);
    const titles = await db.db.sql<{ id: string; title: string }[]>`select id, title from conversations where user_id = 'dave'`;
    expect(titles).toEqual([{ id: 'only-a', title: 'edited while sync was down' }]);
  }, 60_000);

  it("twins (one conversation id in two users' folders) keep the keys a full import gives them, through edits and deletions", async () => {
    const dir = await realDir('twins');
    const doc = (user: string, title: string) =>
      JSON.stringify({ id: 'c1', user_id: user, created_at: '2026-12-01T10:00:00', title, messages: [] });
    for (const user of ['alice', 'bob', 'carol']) {
      await fs.mkdir(path.join(dir, 'conversations', user));
      await fs.writeFile(path.join(dir, 'conversations', user, 'c1.json'), doc(user, `by ${user}`));
    }
    await new Promise((r) => setTimeout(r, 100));
    expect(await startSync(dir, { follow: false }).done).toMatchObject({ imported: 3, errors: 0 });
    expect(await verifyClean(dir, 0)).toBe(true);
    await fs.writeFile(path.join(dir, 'conversations', 'carol', 'c1.json'), doc('carol', 'carol again'));
    await fs.rm(path.join(dir, 'conversations', 'alice', 'c1.json'));
    await new Promise((r) => setTimeout(r, 100));
    const after = await startSync(dir, { follow: false }).done;
    expect(after.errors).toBe(0);
    expect(after.deleted).toBeGreaterThan(0);
    expect(await verifyClean(dir, 0)).toBe(true);
    const rows = await db.db.sql<{ id: string; user_id: string }[]>`select id, user_id from conversations order by user_id`;
    expect(rows.map((r) => r.user_id)).toEqual(['bob', 'carol']);
    expect(rows.find((r) => r.user_id === 'bob')?.id).toBe('c1');
  }, 60_000);

  it('a file left half written is rejected (reported), and the last good version stays loaded', async () => {
    const dir = await realDir('torn');
    await runWriter(dir, 0.2, 20);
    await startSync(dir, { follow: false }).done;
    const [conversation] = await db.db.sql<{ id: string; user_id: string; title: string }[]>`
      select id, user_id, title from conversations order by id limit 1`;
    const file = path.join(dir, 'conversations', conversation!.user_id, `${conversation!.id}.json`);
    const text = await fs.readFile(file, 'utf8');
    await fs.writeFile(file, text.slice(0, Math.floor(text.length / 2)));
    const summary = await startSync(dir, { follow: false, giveUpMs: 300 }).done;
    expect(summary.errors).toBe(1);
    expect(summary.problems.first[0]?.file).toBe(path.relative(dir, file).split(path.sep).join('/'));
    const [after] = await db.db.sql<{ title: string }[]>`select title from conversations where id = ${conversation!.id}`;
    expect(after?.title).toBe(conversation!.title);
  }, 60_000);
});

describe('pgferry sync (CLI)', () => {
  it('follows until SIGTERM, then exits 0 with sync_state marked stopped', async () => {
    const dir = await realDir('cli');
    await runWriter(dir, 0.5, 20);
    const { DATABASE_URL: _ignored, ...env } = process.env;
    const child = spawn(process.execPath, [BIN, 'sync', '--from', dir, '--to', db.url, '--follow'], {
      cwd: REPO,
      env: { ...env, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => {
      out += c;
    });
    child.stderr.on('data', (c) => {
      err += c;
    });
    const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const deadline = Date.now() + 20_000;
    while (!err.includes('sync: first pass') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await runWriter(dir, 0.5, 20);
    expect(await verifyClean(dir, 10_000)).toBe(true);
    child.kill('SIGTERM');
    expect(await closed, err).toBe(0);
    expect(out).toMatch(/sync: \d+ loaded, \d+ unchanged, 0 deleted, 0 problems; lag p50 \d+ ms/);
    const [state] = await db.db.sql<{ following: boolean }[]>`select following from sync_state where source_dir = ${dir}`;
    expect(state?.following).toBe(false);
  }, 60_000);
});
