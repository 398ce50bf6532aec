import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestObject, digestStream } from '../../src/objects/digest.ts';
import { newObjectKey, type ObjectStorage } from '../../src/objects/types.ts';
import { expectCode } from '../helpers/expect.ts';

/**
 * The one object-storage contract: the local driver and the S3 driver (on a
 * real S3-compatible server on loopback) run exactly these tests.
 */

export interface ObjectStorageHarness {
  storage: ObjectStorage;
  cleanup: () => Promise<void>;
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** A body that yields `chunks` and then fails, as a client that disconnects mid-upload. */
function failingBody(chunks: Buffer[]): Readable {
  return Readable.from(
    (async function* () {
      for (const chunk of chunks) yield chunk;
      throw new Error('client went away');
    })(),
  );
}

async function keysUnder(storage: ObjectStorage, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of storage.list(prefix)) keys.push(object.key);
  return keys.sort();
}

export function runObjectStorageContract(label: string, factory: () => Promise<ObjectStorageHarness>): void {
  describe(`object storage contract: ${label}`, () => {
    let harness: ObjectStorageHarness;
    let storage: ObjectStorage;
    // Each test writes under its own prefix, so list() assertions are exact.
    let counter = 0;
    const prefix = () => `t${process.pid}-${Date.now().toString(36)}-${++counter}`;

    beforeAll(async () => {
      harness = await factory();
      storage = harness.storage;
    });
    afterAll(async () => {
      await harness?.storage.close();
      await harness?.cleanup();
    });

    it('put streams the bytes and returns size and sha256; get and head read them back', async () => {
      const bytes = randomBytes(200_000);
      const key = `${prefix()}/a`;
      const stored = await storage.put(key, Readable.from([bytes.subarray(0, 70_000), bytes.subarray(70_000)]));
      expect(stored).toEqual({ key, size: bytes.length, sha256: sha256(bytes) });
      expect(await digestObject(storage, key)).toEqual({ size: bytes.length, sha256: sha256(bytes) });
      const head = await storage.head(key);
      expect(head?.size).toBe(bytes.length);
      if (head?.sha256 !== undefined) expect(head.sha256).toBe(sha256(bytes));
    });

    it('an empty object is an object', async () => {
      const key = `${prefix()}/empty`;
      const stored = await storage.put(key, Readable.from([]));
      expect(stored.size).toBe(0);
      expect(stored.sha256).toBe(sha256(Buffer.alloc(0)));
      expect((await storage.head(key))?.size).toBe(0);
    });

    it('put replaces an existing object whole', async () => {
      const key = `${prefix()}/x`;
      await storage.put(key, Readable.from([Buffer.from('first version, longer')]));
      await storage.put(key, Readable.from([Buffer.from('second')]));
      expect((await digestStream(await storage.get(key))).size).toBe(6);
    });

    it('absent objects: get is NOT_FOUND, head undefined, delete fine', async () => {
      const key = `${prefix()}/missing`;
      await expectCode(storage.get(key), 'NOT_FOUND');
      expect(await storage.head(key)).toBeUndefined();
      await storage.delete(key);
    });

    it('delete removes the object', async () => {
      const key = `${prefix()}/d`;
      await storage.put(key, Readable.from([Buffer.from('bye')]));
      await storage.delete(key);
      expect(await storage.head(key)).toBeUndefined();
    });

    it('more than maxBytes → PAYLOAD_TOO_LARGE and nothing stored', async () => {
      const p = prefix();
      await expectCode(
        storage.put(`${p}/big`, Readable.from([randomBytes(10_000), randomBytes(10_000)]), { maxBytes: 15_000 }),
        'PAYLOAD_TOO_LARGE',
      );
      expect(await keysUnder(storage, p)).toEqual([]);
    });

    it('exactly maxBytes is accepted', async () => {
      const key = `${prefix()}/edge`;
      expect((await storage.put(key, Readable.from([randomBytes(1000)]), { maxBytes: 1000 })).size).toBe(1000);
    });

    it('a body that fails mid-stream leaves nothing (no object, no visible temp)', async () => {
      const p = prefix();
      await expect(storage.put(`${p}/broken`, failingBody([randomBytes(50_000), randomBytes(50_000)]))).rejects.toThrow();
      expect(await keysUnder(storage, p)).toEqual([]);
      expect(await storage.head(`${p}/broken`)).toBeUndefined();
    });

    it('a failed put does not damage the object it would have replaced', async () => {
      const key = `${prefix()}/keep`;
      await storage.put(key, Readable.from([Buffer.from('original')]));
      await expect(storage.put(key, failingBody([Buffer.from('partial')]))).rejects.toThrow();
      expect((await digestObject(storage, key)).size).toBe(8);
    });

    it('expectedSize / expectedSha256 mismatch → CONFLICT and nothing stored', async () => {
      const p = prefix();
      const bytes = Buffer.from('hello world');
      await expectCode(storage.put(`${p}/s`, Readable.from([bytes]), { expectedSize: 3 }), 'CONFLICT');
      await expectCode(storage.put(`${p}/h`, Readable.from([bytes]), { expectedSha256: 'f'.repeat(64) }), 'CONFLICT');
      expect(await keysUnder(storage, p)).toEqual([]);
      const ok = await storage.put(`${p}/ok`, Readable.from([bytes]), { expectedSize: bytes.length, expectedSha256: sha256(bytes) });
      expect(ok.size).toBe(bytes.length);
    });

    it('list yields every object under a prefix with its size, and nothing else', async () => {
      const p = prefix();
      await storage.put(`${p}/one`, Readable.from([Buffer.from('1')]));
      await storage.put(`${p}/dir/two`, Readable.from([Buffer.from('22')]));
      await storage.put(`${p}x/other`, Readable.from([Buffer.from('333')]));
      const listed: Record<string, number> = {};
      for await (const object of storage.list(`${p}/`)) listed[object.key] = object.size;
      expect(listed).toEqual({ [`${p}/one`]: 1, [`${p}/dir/two`]: 2 });
      expect(await keysUnder(storage, p)).toEqual([`${p}/dir/two`, `${p}/one`, `${p}x/other`]);
    });

    it('hostile keys are refused before they touch a path or a request', async () => {
      for (const key of [
        '../escape',
        'a/../../b',
        '/abs',
        'a//b',
        '.hidden',
        'a/.tmp',
        'nul\0byte',
        'a\\b',
        '',
        'x'.repeat(600),
        'rtl\u202Egpj.exe',
      ]) {
        await expectCode(storage.put(key, Readable.from([Buffer.from('x')])), 'INVALID_INPUT');
        await expectCode(storage.get(key), 'INVALID_INPUT');
      }
    });

    it('newObjectKey gives a fresh valid key every time', async () => {
      const a = newObjectKey();
      const b = newObjectKey();
      expect(a).not.toBe(b);
      await storage.put(a, Readable.from([Buffer.from('k')]));
      expect((await storage.head(a))?.size).toBe(1);
      await storage.delete(a);
    });

    it('concurrent puts of different keys all land whole', async () => {
      const p = prefix();
      const bodies = Array.from({ length: 8 }, () => randomBytes(30_000 + Math.floor(Math.random() * 30_000)));
      const stored = await Promise.all(bodies.map((bytes, i) => storage.put(`${p}/c${i}`, Readable.from([bytes]))));
      expect(stored.map((s) => s.sha256)).toEqual(bodies.map(sha256));
      expect((await keysUnder(storage, p)).length).toBe(8);
    });

    it('presigned URLs: absent for a driver without them, else they work over HTTP', async () => {
      const key = `${prefix()}/p`;
      const putUrl = await storage.presignPut(key, { contentType: 'application/pdf' });
      if (putUrl === undefined) {
        expect(storage.name).toBe('local');
        expect(await storage.presignGet(key)).toBeUndefined();
        return;
      }
      const bytes = randomBytes(5000);
      const put = await fetch(putUrl, { method: 'PUT', body: bytes, headers: { 'content-type': 'application/pdf' } });
      expect(put.status).toBe(200);
      expect(await digestObject(storage, key)).toEqual({ size: 5000, sha256: sha256(bytes) });
      const getUrl = await storage.presignGet(key, { filename: 'évil "name"\n.pdf' });
      const got = await fetch(getUrl as string);
      expect(got.status).toBe(200);
      expect(Buffer.from(await got.arrayBuffer()).equals(bytes)).toBe(true);
    });
  });
}
