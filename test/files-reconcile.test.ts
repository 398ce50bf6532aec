import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * `pgferry files reconcile` on the local driver: planted orphans (old and
 * young), a row whose object is missing and one whose bytes differ.
 */

let tmp: string;
let db: TestDatabase;
const sha = (bytes: string) => createHash('sha256').update(bytes).digest('hex');
const keys = {
  good: 'uploads/2026/12/good',
  missing: 'uploads/2026/12/missing',
  changed: 'uploads/2026/12/changed',
  oldOrphan: 'uploads/2026/11/old-orphan',
  youngOrphan: 'uploads/2026/12/young-orphan',
};

async function object(key: string, bytes: string, ageMs = 0): Promise<void> {
  const file = path.join(tmp, 'files', key);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, bytes);
  if (ageMs > 0) await fs.utimes(file, new Date(Date.now() - ageMs), new Date(Date.now() - ageMs));
}

async function row(key: string, bytes: string): Promise<void> {
  await db.db.sql`insert into uploads (id, user_id, filename, storage, file_key, file_size, sha256)
                  values (${randomUUID()}, 'alice', 'f.pdf', 'local', ${key}, ${bytes.length}, ${sha(bytes)})`;
}

const reconcile = (...extra: string[]) => runCli(['files', 'reconcile', '--db', db.url, ...extra], { DATA_DIR: tmp });

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-reconcile-'));
  db = await createTestDatabase();
  await row(keys.good, 'good bytes');
  await object(keys.good, 'good bytes');
  await row(keys.missing, 'never stored');
  await row(keys.changed, 'original!!');
  await object(keys.changed, 'tampered!!'); // same size, other bytes
  await object(keys.oldOrphan, 'left by a killed upload', 3 * 86_400_000);
  await object(keys.youngOrphan, 'an upload in flight');
});

afterAll(async () => {
  await db?.drop();
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('files reconcile', { timeout: 180_000 }, () => {
  it('finds orphans, missing objects and objects whose bytes differ', async () => {
    const run = await reconcile();
    expect(run.code, run.stdout + run.stderr).toBe(1);
    expect(run.stdout).toMatch(new RegExp(`orphan ${keys.oldOrphan}`));
    expect(run.stdout).toMatch(new RegExp(`orphan ${keys.youngOrphan}.*younger than the grace period`));
    expect(run.stdout).toMatch(new RegExp(`missing ${keys.missing}`));
    expect(run.stdout).toMatch(new RegExp(`different ${keys.changed}.*sha256`));
    expect(run.stdout).not.toMatch(new RegExp(`${keys.good}`));
    // Sizes only: the tampered object has the right size.
    expect((await reconcile('--no-hash')).stdout).not.toMatch(/different uploads/);
  });

  it('--fix deletes only orphans older than the grace period, and never touches rows', async () => {
    const run = await reconcile('--fix', '--grace', '24h');
    expect(run.stdout).toMatch(new RegExp(`deleted ${keys.oldOrphan}`));
    await expect(fs.access(path.join(tmp, 'files', keys.oldOrphan))).rejects.toThrow();
    await fs.access(path.join(tmp, 'files', keys.youngOrphan));
    const [n] = await db.db.sql`select count(*)::int as n from uploads`;
    expect(n!.n).toBe(3);
    expect((await reconcile('--grace', 'soon')).code).toBe(2);
  });
});
