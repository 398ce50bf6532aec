import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { moveFiles } from '../src/transfer/files/move.ts';
import { localStore, type ObjectStore } from '../src/transfer/files/object-store.ts';
import { reconcileStore } from '../src/transfer/files/reconcile.ts';
import { type TargetSpec, targetStore } from './fixtures/move-stores.ts';
import { runCli } from './helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { type S3TestServer, startS3Server } from './helpers/s3-server.ts';

/**
 * files move on the local driver: every object copied, checked and switched;
 * idempotent; reversible with --delete-source; a target that fails is
 * retried then `failed`, and a re-run finishes; kill -9 mid-move then re-run
 * moves every object exactly once and no row names a missing object.
 */

const CHILD = fileURLToPath(new URL('./fixtures/move-child.ts', import.meta.url));
const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

interface World {
  db: TestDatabase;
  dataDir: string;
  spec: TargetSpec;
  source: ObjectStore;
  target: ObjectStore;
  keys: string[];
}

let s3: S3TestServer | undefined;

function s3Env(server: S3TestServer): Record<string, string> {
  const { settings } = server;
  return {
    S3_BUCKET_NAME: settings.bucket ?? '',
    AWS_REGION: settings.region ?? '',
    AWS_ACCESS_KEY_ID: settings.accessKeyId ?? '',
    AWS_SECRET_ACCESS_KEY: settings.secretAccessKey ?? '',
    S3_ENDPOINT: settings.endpoint ?? '',
  };
}

async function world(tmp: string, objects: number, size: () => number, on: 'local-driver' | 's3' = 'local-driver'): Promise<World> {
  const db = await createTestDatabase();
  const dataDir = path.join(tmp, `data-${randomUUID().slice(0, 8)}`);
  const spec: TargetSpec = on === 's3' ? { kind: 's3', env: s3Env(s3!) } : { kind: 'local-driver', root: path.join(dataDir, 'target') };
  const source = localStore(dataDir);
  const keys: string[] = [];
  for (let i = 0; i < objects; i++) {
    const key = `uploads/2026/12/${randomUUID()}`;
    const bytes = randomBytes(size());
    await source.storage.put(key, Readable.from([bytes]));
    keys.push(key);
    await db.db.sql`insert into uploads (id, user_id, filename, storage, file_key, file_size, sha256)
                    values (${randomUUID()}, 'alice', ${`f${i}.pdf`}, 'local', ${key}, ${bytes.length}, ${i % 3 === 0 ? null : sha(bytes)})`;
  }
  return { db, dataDir, spec, source, target: await targetStore(spec), keys };
}

async function rowsAt(db: TestDatabase, storage: string): Promise<number> {
  const [row] = await db.db.sql<{ n: number }[]>`select count(*)::int as n from uploads where storage = ${storage}`;
  return row!.n;
}

async function listKeys(store: ObjectStore): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of store.storage.list()) keys.push(object.key);
  return keys.sort();
}

/** The world's database goes, and the target is emptied (the S3 bucket is shared by the tests). */
async function dispose(w: World): Promise<void> {
  await w.db.drop();
  for (const key of await listKeys(w.target)) await w.target.storage.delete(key);
}

let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-move-'));
  s3 = await startS3Server('pgferry-move');
});
afterAll(async () => {
  await s3?.close();
  await fs.rm(tmp, { recursive: true, force: true });
});

describe.each(['local-driver', 's3'] as const)('files move (target: %s)', { timeout: 180_000 }, (on) => {
  it('moves, verifies and switches every row; idempotent; logged per object; reversible with delete-source', async () => {
    const w = await world(tmp, 12, () => 1 + Math.floor(Math.random() * 200_000), on);
    try {
      // Two rows naming the same object (seed 000's same upload recorded twice).
      await w.db.db.sql`insert into uploads (id, user_id, filename, storage, file_key, file_size)
                        values (${randomUUID()}, 'alice', 'twin.pdf', 'local', ${w.keys[0]!}, 0)`;
      const dry = await moveFiles({ db: w.db.db, from: w.source, to: w.target, concurrency: 3, dryRun: true });
      expect(dry).toMatchObject({ selected: 13, migrated: 0 });
      expect(await rowsAt(w.db, 's3')).toBe(0);

      const first = await moveFiles({ db: w.db.db, from: w.source, to: w.target, concurrency: 3 });
      expect(first).toMatchObject({ selected: 13, migrated: 13, failed: 0 });
      expect(await rowsAt(w.db, 's3')).toBe(13);
      expect(await listKeys(w.target)).toEqual([...w.keys].sort());
      const moves = await w.db.db.sql`select status, count(*)::int as n from file_moves group by status`;
      expect(moves).toEqual([{ status: 'migrated', n: 13 }]);
      const [progress] = await w.db.db.sql`select migration_status, count::int as n from s3_migration_progress`;
      expect(progress).toEqual({ migration_status: 'migrated', n: 13 });
      // Every row now has the checksum of its bytes, checked at the target.
      const [unchecked] = await w.db.db.sql`select count(*)::int as n from uploads where sha256 is null`;
      expect(unchecked!.n).toBe(0);

      const again = await moveFiles({ db: w.db.db, from: w.source, to: w.target, concurrency: 3 });
      expect(again).toMatchObject({ selected: 0, migrated: 0 });

      const back = await moveFiles({ db: w.db.db, from: w.target, to: w.source, concurrency: 3, deleteSource: true });
      expect(back).toMatchObject({ selected: 13, migrated: 13, sourceDeleted: 12 });
      expect(await rowsAt(w.db, 'local')).toBe(13);
      expect(await listKeys(w.target)).toEqual([]);
      expect((await reconcileStore({ db: w.db.db, store: w.source, graceMs: 0 })).ok).toBe(true);
      const [reset] = await w.db.db.sql`select count(*)::int as n from file_moves where source_store = 's3' and status = 'migrated'`;
      expect(reset!.n).toBe(13);
    } finally {
      await dispose(w);
    }
  });

  it.runIf(on === 'local-driver')('a target that fails is retried with backoff, then failed; a re-run finishes', async () => {
    const w = await world(tmp, 4, () => 1000);
    try {
      // The target's root is a file: every put fails (ENOTDIR) until it is a directory again.
      const root = (w.spec as { root: string }).root;
      await fs.mkdir(path.dirname(root), { recursive: true });
      await fs.writeFile(root, 'not a directory');
      const failed = await moveFiles({ db: w.db.db, from: w.source, to: w.target, concurrency: 2, attempts: 3, backoffMs: 10 });
      expect(failed).toMatchObject({ selected: 4, migrated: 0, failed: 4 });
      const logged = await w.db.db.sql<{ status: string; attempts: number; error_message: string }[]>`
        select status, attempts, error_message from file_moves`;
      for (const row of logged) expect(row).toMatchObject({ status: 'failed', attempts: 3 });
      expect(logged[0]!.error_message).toMatch(/./);
      expect(await rowsAt(w.db, 'local')).toBe(4);

      await fs.rm(root);
      const resumed = await moveFiles({ db: w.db.db, from: w.source, to: w.target, concurrency: 2, attempts: 3, backoffMs: 10 });
      expect(resumed).toMatchObject({ selected: 4, migrated: 4, failed: 0 });
      const [done] = await w.db.db.sql`select count(*)::int as n from file_moves where status = 'migrated' and error_message is null`;
      expect(done!.n).toBe(4);
    } finally {
      await dispose(w);
    }
  });

  it('kill -9 mid-move, then a re-run: every object once at the target, no row naming a missing object', async () => {
    const w = await world(tmp, 150, () => 20_000 + Math.floor(Math.random() * 60_000), on);
    try {
      const task = JSON.stringify({ dbUrl: w.db.url, sourceDataDir: w.dataDir, target: w.spec, concurrency: 2 });
      const child = spawn(process.execPath, [CHILD, task], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          if (/moved (\d{2,})/.test(out) && !child.killed) {
            child.kill('SIGKILL');
            resolve();
          }
        });
        child.on('exit', () => reject(new Error(`child ended before it was killed: ${out} ${stderr}`)));
      });
      await new Promise((resolve) => child.once('exit', resolve));
      const moved = await rowsAt(w.db, 's3');
      expect(moved).toBeGreaterThan(0);
      expect(moved).toBeLessThan(150);
      // No row names an object that is not at its store, mid-move.
      expect((await reconcileStore({ db: w.db.db, store: w.target, graceMs: Number.MAX_SAFE_INTEGER })).missing).toBe(0);

      const resumed = await moveFiles({ db: w.db.db, from: w.source, to: w.target, concurrency: 2 });
      expect(resumed.failed).toBe(0);
      expect(resumed.selected).toBe(150 - moved);
      expect(await rowsAt(w.db, 's3')).toBe(150);
      expect(await listKeys(w.target)).toEqual([...w.keys].sort());
      const check = await reconcileStore({ db: w.db.db, store: w.target, graceMs: 0 });
      expect(check).toMatchObject({ ok: true, objects: 150, missing: 0, different: 0, orphans: 0 });
      const [log] = await w.db.db
        .sql`select count(*)::int as n, count(distinct record_id)::int as d from file_moves where status = 'migrated'`;
      expect(log).toEqual({ n: 150, d: 150 });
    } finally {
      await dispose(w);
    }
  });
});

describe('files move to S3 when S3 goes away', { timeout: 180_000 }, () => {
  it('objects are retried, then failed; once S3 is back a re-run finishes every one', async () => {
    const w = await world(tmp, 20, () => 5000, 's3');
    try {
      let stopped: Promise<void> | undefined;
      const first = await moveFiles({
        db: w.db.db,
        from: w.source,
        to: w.target,
        concurrency: 1,
        attempts: 2,
        backoffMs: 20,
        onProgress: (p) => {
          if (p.objects >= 5 && !stopped) stopped = s3!.stop();
        },
      });
      await stopped;
      expect(first.migrated).toBeGreaterThanOrEqual(5);
      expect(first.failed).toBeGreaterThan(0);
      expect(first.migrated + first.failed).toBe(20);
      const failed = await w.db.db.sql<{ attempts: number; error_message: string }[]>`
        select attempts, error_message from file_moves where status = 'failed'`;
      expect(failed).toHaveLength(first.failed);
      for (const row of failed) expect(row.attempts).toBe(2);
      expect(await rowsAt(w.db, 's3')).toBe(first.migrated);

      await s3!.start();
      const resumed = await moveFiles({ db: w.db.db, from: w.source, to: w.target, concurrency: 2 });
      expect(resumed).toMatchObject({ selected: first.failed, migrated: first.failed, failed: 0 });
      expect(await rowsAt(w.db, 's3')).toBe(20);
      expect(await reconcileStore({ db: w.db.db, store: w.target, graceMs: 0 })).toMatchObject({ ok: true, objects: 20 });
    } finally {
      await dispose(w);
    }
  });
});

describe('pgferry files move / reconcile (CLI, S3)', () => {
  it('--dry-run changes nothing; a move exits 0 with objects, MB and MB/s; reconcile finds a planted orphan and a missing object', async () => {
    const w = await world(tmp, 6, () => 3000, 's3');
    const env = { ...s3Env(s3!), DATA_DIR: w.dataDir };
    try {
      const dry = await runCli(['files', 'move', '--to', 's3', '--db', w.db.url, '--dry-run'], env);
      expect(dry.code, dry.stdout + dry.stderr).toBe(0);
      expect(dry.stdout).toMatch(/dry run/);
      expect(await rowsAt(w.db, 's3')).toBe(0);

      const run = await runCli(['files', 'move', '--to', 's3', '--db', w.db.url, '--concurrency', '3'], env);
      expect(run.code, run.stdout + run.stderr).toBe(0);
      expect(run.stdout).toMatch(/objects\/s.*MB\/s/);
      expect(await rowsAt(w.db, 's3')).toBe(6);
      const [url] = await w.db.db.sql<{ url: string; bucket: string }[]>`select url, bucket from uploads limit 1`;
      expect(url!.url).toMatch(new RegExp(`^${s3!.endpoint}/pgferry-move/uploads/`));

      expect((await runCli(['files', 'reconcile', '--store', 's3', '--db', w.db.url], env)).code).toBe(0);
      await w.target.storage.put('uploads/2026/12/planted-orphan', Readable.from([Buffer.from('orphan')]));
      await w.target.storage.delete(w.keys[0]!);
      const found = await runCli(['files', 'reconcile', '--store', 's3', '--db', w.db.url, '--fix', '--grace', '1h'], env);
      expect(found.code).toBe(1);
      expect(found.stdout).toMatch(/orphan uploads\/2026\/12\/planted-orphan: .*younger than the grace period/);
      expect(found.stdout).toMatch(new RegExp(`missing ${w.keys[0]}`));
      const fixed = await runCli(['files', 'reconcile', '--store', 's3', '--db', w.db.url, '--fix', '--grace', '0s'], env);
      expect(fixed.stdout).toMatch(/deleted uploads\/2026\/12\/planted-orphan/);

      expect((await runCli(['files', 'move', '--to', 'nowhere', '--db', w.db.url], env)).code).toBe(2);
      expect((await runCli(['files', 'move', '--help'])).stdout).toMatch(/--delete-source/);
    } finally {
      await dispose(w);
    }
  }, 240_000); // eight CLI runs on a loaded two-core machine
});
