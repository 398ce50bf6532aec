import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARCHIVE_MANIFEST, checkArchive, removeArchived, restoreArchive, writeArchive } from '../src/archive/archive.ts';
import { writeSample } from '../src/transfer/sample.ts';
import { runCli } from './fixtures/import-corpus.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * `pgferry archive` (phase 5): a tar.gz plus manifest that reads back as
 * written, a restore that gives back the same bytes and overwrites nothing,
 * a damaged archive refused, and --remove deleting files only after a clean
 * verify — and never a file changed since it was archived.
 */

let tmp: string;
let db: TestDatabase;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-archive-'));
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.drop();
  await fs.rm(tmp, { recursive: true, force: true });
});

/** Every file under `root` with its content (tar keeps mtimes to the second only, so they are not compared). */
async function snapshotTree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
      const abs = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(abs);
      else out.set(path.relative(root, abs).split(path.sep).join('/'), (await fs.readFile(abs)).toString('base64'));
    }
  };
  await walk(root);
  return out;
}

async function sample(name: string): Promise<string> {
  const dir = path.join(tmp, name);
  await writeSample(dir, { users: 3, conversations: 4, messages: 3, seed: 5 });
  // Something that is not the app's data: never archived, never removed.
  await fs.mkdir(path.join(dir, 'postgres'));
  await fs.writeFile(path.join(dir, 'postgres', 'PG_VERSION'), '18\n');
  return fs.realpath(dir);
}

describe('archive and restore', () => {
  it('round-trips the JSON tree byte for byte; the archive is a plain tar.gz with the manifest last', async () => {
    const dir = await sample('roundtrip');
    const file = path.join(tmp, 'roundtrip.tar.gz');
    const result = await writeArchive(dir, ['conversations', 'usage'], file);
    expect(result.manifest.files.length).toBeGreaterThan(10);
    expect(result.manifest.files.some((f) => f.path.startsWith('postgres/'))).toBe(false);

    const listed = spawnSync('tar', ['-tzf', file], { encoding: 'utf8' }).stdout.trim().split('\n');
    expect(listed.at(-1)).toBe(ARCHIVE_MANIFEST);
    expect(listed).toHaveLength(result.manifest.files.length + 1);
    expect((await checkArchive(file)).problems).toEqual([]);

    const into = path.join(tmp, 'roundtrip-restored');
    expect(await restoreArchive(file, into)).toEqual({ restored: result.manifest.files.length, present: 0 });
    const original = await snapshotTree(dir);
    original.delete('postgres/PG_VERSION');
    expect(await snapshotTree(into)).toEqual(original);
    // Again: everything is there and identical, nothing to do.
    expect(await restoreArchive(file, into)).toEqual({ restored: 0, present: result.manifest.files.length });
  });

  it('never overwrites: a file there with other content stops the restore before anything is written', async () => {
    const dir = await sample('conflict');
    const file = path.join(tmp, 'conflict.tar.gz');
    const { manifest } = await writeArchive(dir, ['conversations', 'usage'], file);
    const into = path.join(tmp, 'conflict-restored');
    const first = manifest.files[0]!.path;
    await fs.mkdir(path.dirname(path.join(into, first)), { recursive: true });
    await fs.writeFile(path.join(into, first), '{"mine": true}');
    await expect(restoreArchive(file, into)).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(await fs.readFile(path.join(into, first), 'utf8')).toBe('{"mine": true}');
    expect((await snapshotTree(into)).size).toBe(1);
    await expect(writeArchive(dir, ['conversations'], file)).rejects.toMatchObject({ code: 'CONFLICT' });
  });

  it('refuses a damaged archive', async () => {
    const dir = await sample('damaged');
    const file = path.join(tmp, 'damaged.tar.gz');
    await writeArchive(dir, ['conversations', 'usage'], file);
    const bytes = await fs.readFile(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await fs.writeFile(file, bytes);
    await expect(restoreArchive(file, path.join(tmp, 'damaged-restored'))).rejects.toMatchObject({ code: 'CORRUPT_DATA' });
  });

  it('removes only files whose bytes still match the manifest', async () => {
    const dir = await sample('remove-unit');
    const { manifest } = await writeArchive(dir, ['conversations', 'usage'], path.join(tmp, 'remove-unit.tar.gz'));
    const changed = manifest.files[1]!.path;
    await fs.appendFile(path.join(dir, changed), ' ');
    const result = await removeArchived(dir, manifest);
    expect(result.removed).toBe(manifest.files.length - 1);
    expect(result.kept).toEqual([{ path: changed, reason: 'changed since it was archived: kept' }]);
    expect([...(await snapshotTree(dir)).keys()].sort()).toEqual([changed, 'postgres/PG_VERSION'].sort());
  });
});

describe('pgferry archive --remove (CLI)', () => {
  it('deletes nothing while verify is not clean; after a clean verify deletes the files, and restore brings back a tree that verifies', async () => {
    const dir = await sample('cli');
    const imported = await runCli(['import', '--from', dir, '--to', db.url]);
    expect(imported.code, imported.stderr).toBe(0);
    const before = await snapshotTree(dir);

    // A conversation edited after the import: the database is behind, so nothing may be removed.
    const edited = [...before.keys()].find((p) => p.startsWith('conversations/'))!;
    const original = await fs.readFile(path.join(dir, edited), 'utf8');
    await fs.writeFile(path.join(dir, edited), original.replace(/"title": "[^"]*"/, '"title": "edited later"'));
    const refused = await runCli(['archive', '--from', dir, '--to', path.join(tmp, 'cli-1.tar.gz'), '--remove', '--database', db.url]);
    expect(refused.code, refused.stdout + refused.stderr).toBe(1);
    expect(refused.stdout).toContain('nothing deleted');
    expect((await snapshotTree(dir)).size).toBe(before.size);

    await fs.writeFile(path.join(dir, edited), original);
    const archive = path.join(tmp, 'cli-2.tar.gz');
    const done = await runCli(['archive', '--from', dir, '--to', archive, '--remove', '--database', db.url]);
    expect(done.code, done.stdout + done.stderr).toBe(0);
    expect(done.stdout).toContain('verify: clean');
    expect([...(await snapshotTree(dir)).keys()]).toEqual(['postgres/PG_VERSION']);

    const restored = await runCli(['archive', 'restore', archive, '--to', dir]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(await snapshotTree(dir)).toEqual(before);
    const verify = await runCli(['verify', '--from', dir, '--to', db.url]);
    expect(verify.code, verify.stdout).toBe(0);
  }, 120_000);
});
