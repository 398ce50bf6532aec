import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { LocalObjectStorage } from '../src/objects/local.ts';
import { removeStaleTempFiles } from '../src/store/json/files.ts';
import { runObjectStorageContract } from './contract/object-storage-contract.ts';

runObjectStorageContract('local', async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-objects-local-'));
  return { storage: LocalObjectStorage.forDataDir(dataDir), cleanup: () => rm(dataDir, { recursive: true, force: true }) };
});

async function allFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

describe('local object storage', () => {
  it('stores objects under DATA_DIR/files/<key> and nowhere else', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-objects-local-'));
    try {
      const storage = LocalObjectStorage.forDataDir(dataDir);
      await storage.put('uploads/2026/12/abc', Readable.from([Buffer.from('bytes')]));
      await expect(storage.put('../outside', Readable.from([Buffer.from('x')]))).rejects.toThrow(/invalid object key/);
      expect(await allFiles(dataDir)).toEqual([path.join('files', 'uploads', '2026', '12', 'abc')]);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('a failed put leaves no temp file; a killed writer’s temp file is invisible to list and cleared as stale', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-objects-local-'));
    try {
      const storage = LocalObjectStorage.forDataDir(dataDir);
      const body = Readable.from(
        (async function* () {
          yield Buffer.alloc(1000);
          throw new Error('gone');
        })(),
      );
      await expect(storage.put('a/b', body)).rejects.toThrow();
      expect(await allFiles(dataDir)).toEqual([]);
      // As kill -9 between write and rename leaves it (a pid that no longer runs).
      const dir = path.join(dataDir, 'files', 'a');
      await writeFile(path.join(dir, '.b.999999999.0123456789ab.tmp'), 'partial');
      const listed = [];
      for await (const object of storage.list('')) listed.push(object.key);
      expect(listed).toEqual([]);
      expect(await removeStaleTempFiles(path.join(dataDir, 'files'), 8)).toHaveLength(1);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
