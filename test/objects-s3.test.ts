import { describe, expect, it } from 'vitest';
import { S3ObjectStorage } from '../src/objects/s3.ts';
import { runObjectStorageContract } from './contract/object-storage-contract.ts';
import { expectCode } from './helpers/expect.ts';
import { startS3Server } from './helpers/s3-server.ts';

runObjectStorageContract('s3 (s3rver on loopback)', async () => {
  const server = await startS3Server();
  return { storage: new S3ObjectStorage(server.settings), cleanup: () => server.close() };
});

describe('s3 object storage', () => {
  it('a multipart upload (past one 8 MiB part) streams and hashes like a small one', async () => {
    const server = await startS3Server();
    const storage = new S3ObjectStorage(server.settings);
    try {
      const { createHash, randomBytes } = await import('node:crypto');
      const { Readable } = await import('node:stream');
      const chunks = Array.from({ length: 19 }, () => randomBytes(1024 * 1024));
      const hash = createHash('sha256');
      for (const chunk of chunks) hash.update(chunk);
      const stored = await storage.put('big/object', Readable.from(chunks));
      expect(stored.size).toBe(19 * 1024 * 1024);
      expect(stored.sha256).toBe(hash.digest('hex'));
      expect((await storage.head('big/object'))?.size).toBe(19 * 1024 * 1024);
    } finally {
      await storage.close();
      await server.close();
    }
  });

  it('past one part: too large or a client gone mid-stream → no object (the multipart upload is abandoned)', async () => {
    const server = await startS3Server();
    const storage = new S3ObjectStorage(server.settings);
    try {
      const { randomBytes } = await import('node:crypto');
      const { Readable } = await import('node:stream');
      const chunks = Array.from({ length: 12 }, () => randomBytes(1024 * 1024));
      await expectCode(storage.put('big/too-large', Readable.from(chunks), { maxBytes: 10 * 1024 * 1024 }), 'PAYLOAD_TOO_LARGE');
      const gone = Readable.from(
        (async function* () {
          yield* chunks;
          throw new Error('client went away');
        })(),
      );
      await expect(storage.put('big/gone', gone)).rejects.toThrow();
      const keys = [];
      for await (const object of storage.list('big/')) keys.push(object.key);
      expect(keys).toEqual([]);
    } finally {
      await storage.close();
      await server.close();
    }
  });

  it('expectedSha256 is kept with the object, so head reports it without reading', async () => {
    const server = await startS3Server();
    const storage = new S3ObjectStorage(server.settings);
    try {
      const { Readable } = await import('node:stream');
      const sha = '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824';
      await storage.put('k', Readable.from([Buffer.from('hello')]), { expectedSha256: sha });
      expect(await storage.head('k')).toMatchObject({ size: 5, sha256: sha });
    } finally {
      await storage.close();
      await server.close();
    }
  });

  it('S3 gone away → UNAVAILABLE naming the bucket and key; back again → works', async () => {
    const server = await startS3Server();
    const storage = new S3ObjectStorage(server.settings);
    try {
      const { Readable } = await import('node:stream');
      await storage.put('before', Readable.from([Buffer.from('x')]));
      await server.stop();
      await expectCode(storage.head('before'), 'UNAVAILABLE');
      await expectCode(storage.put('during', Readable.from([Buffer.from('x')])), 'UNAVAILABLE');
      await server.start();
      expect((await storage.head('before'))?.size).toBe(1);
    } finally {
      await storage.close();
      await server.close();
    }
  });

  it('no bucket → CONFIG_ERROR naming S3_BUCKET_NAME', () => {
    expect(
      () =>
        new S3ObjectStorage({
          bucket: undefined,
          region: undefined,
          accessKeyId: undefined,
          secretAccessKey: undefined,
          endpoint: undefined,
        }),
    ).toThrow(/S3_BUCKET_NAME/);
  });
});
