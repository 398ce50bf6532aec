import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ObjectStorage } from '../src/objects/s3.ts';
import type { Store } from '../src/store/types.ts';
import {
  BACKENDS,
  call,
  createStorage,
  isErrorBody,
  type StorageFixture,
  startServer,
  type TestServer,
  testConfig,
} from './helpers/http.ts';
import { type S3TestServer, startS3Server } from './helpers/s3-server.ts';

/**
 * The upload flow over real HTTP (issue 11 item 3): multipart streamed into
 * object storage, limits (413/415) with nothing stored, a client that
 * disconnects mid-upload leaving nothing, hostile filenames as metadata only,
 * isolation between users, and the S3 paths (presigned GET redirect,
 * presigned PUT + complete) against a real S3 server on loopback.
 */

const MAX = 100 * 1024;
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
let counter = 0;
const newUser = () => `up-${process.pid}-${++counter}-${Math.random().toString(36).slice(2, 8)}`;

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

async function upload(
  baseUrl: string,
  user: string | undefined,
  bytes: Uint8Array,
  options: { filename?: string; type?: string; query?: string } = {},
) {
  const form = new FormData();
  form.append('file', new Blob([bytes], { type: options.type ?? 'application/pdf' }), options.filename ?? 'report.pdf');
  const headers: Record<string, string> = user === undefined ? {} : { 'x-user-id': user };
  const response = await fetch(`${baseUrl}/v1/uploads${options.query ?? ''}`, { method: 'POST', body: form, headers });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
}

for (const backend of BACKENDS) {
  describe(`uploads over HTTP, local object storage, ${backend} store`, () => {
    let storage: StorageFixture;
    let store: Store;
    let server: TestServer;
    const filesDir = () => path.join(storage.dataDir, 'files');

    beforeAll(async () => {
      storage = await createStorage(backend);
      store = await storage.open();
      server = await startServer({ store, config: testConfig({ DATA_DIR: storage.dataDir, UPLOAD_MAX_BYTES: String(MAX) }) });
    });
    afterAll(async () => {
      await server?.close();
      await store?.close();
      await storage?.cleanup();
    });

    it('upload → 201 with size and sha256; metadata, list and content return it', async () => {
      const user = newUser();
      const bytes = randomBytes(40_000);
      const created = await upload(server.url, user, bytes, { query: '?docType=ISO&uploadType=report' });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ userId: user, filename: 'report.pdf', size: 40_000, sha256: sha256(bytes), storage: 'local' });
      expect(created.body).toMatchObject({ docType: 'ISO', uploadType: 'report', contentType: 'application/pdf', status: 'active' });
      expect(created.headers.get('location')).toBe(`/v1/uploads/${created.body.id}`);

      const meta = await call(server.url, 'GET', `/v1/uploads/${created.body.id}`, { user });
      expect(meta.body).toEqual(created.body);
      const list = await call(server.url, 'GET', '/v1/uploads?docType=ISO', { user });
      expect(list.body.items.map((u: { id: string }) => u.id)).toEqual([created.body.id]);

      const content = await fetch(`${server.url}/v1/uploads/${created.body.id}/content`, { headers: { 'x-user-id': user } });
      expect(content.status).toBe(200);
      expect(content.headers.get('content-type')).toBe('application/pdf');
      expect(content.headers.get('x-content-type-options')).toBe('nosniff');
      expect(content.headers.get('content-disposition')).toContain('attachment');
      expect(sha256(new Uint8Array(await content.arrayBuffer()))).toBe(sha256(bytes));
    });

    it("another user's upload is 404 everywhere and absent from their list", async () => {
      const owner = newUser();
      const other = newUser();
      const created = await upload(server.url, owner, randomBytes(1000));
      for (const [method, url] of [
        ['GET', `/v1/uploads/${created.body.id}`],
        ['GET', `/v1/uploads/${created.body.id}/content`],
        ['DELETE', `/v1/uploads/${created.body.id}`],
      ] as const) {
        const answer = await call(server.url, method, url, { user: other });
        expect(answer.status, `${method} ${url}`).toBe(404);
        expect(isErrorBody(answer.body)).toBe(true);
      }
      expect((await call(server.url, 'GET', '/v1/uploads', { user: other })).body.items).toEqual([]);
      expect((await call(server.url, 'GET', `/v1/uploads/${created.body.id}`, { user: owner })).status).toBe(200);
    });

    it('no credentials → 401; a bad id → 400', async () => {
      expect((await upload(server.url, undefined, randomBytes(10))).status).toBe(401);
      expect((await call(server.url, 'GET', '/v1/uploads/../../etc', { user: newUser() })).status).toBe(404);
      expect((await call(server.url, 'GET', '/v1/uploads/not-a-uuid', { user: newUser() })).status).toBe(400);
    });

    it('oversized → 413, disallowed type → 415, not multipart → 415: nothing stored, no row', async () => {
      const user = newUser();
      const before = await filesUnder(filesDir());
      const big = await upload(server.url, user, randomBytes(MAX + 1));
      expect(big.status).toBe(413);
      expect(big.body.error.code).toBe('PAYLOAD_TOO_LARGE');
      const huge = await upload(server.url, user, randomBytes(MAX * 3));
      expect(huge.status).toBe(413);
      const html = await upload(server.url, user, Buffer.from('<script>alert(1)</script>'), { type: 'text/html', filename: 'x.html' });
      expect(html.status).toBe(415);
      expect(html.body.error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
      const json = await call(server.url, 'POST', '/v1/uploads', { user, body: { file: 'x' } });
      expect(json.status).toBe(415);
      expect(await filesUnder(filesDir())).toEqual(before);
      expect((await call(server.url, 'GET', '/v1/uploads', { user })).body.items).toEqual([]);
      // Exactly the limit is fine.
      expect((await upload(server.url, user, randomBytes(MAX))).status).toBe(201);
    });

    it('hostile filenames are stored as metadata only; the bytes land under a key pgferry chose', async () => {
      const user = newUser();
      const names = [
        '../../../etc/passwd',
        'a\u0000b.pdf',
        `${'n'.repeat(10_000)}.pdf`,
        'invoice\u202Efdp.exe',
        '..',
        'C:\\boot.ini',
        '"; rm -rf /',
      ];
      for (const filename of names) {
        const created = await upload(server.url, user, Buffer.from(filename.slice(0, 50)), { filename });
        expect(created.status, JSON.stringify(filename.slice(0, 40))).toBe(201);
        expect(created.body.filename).not.toMatch(/[/\\\u0000\u202E]/);
        expect(created.body.key).toMatch(/^uploads\/\d{4}\/\d{2}\/[0-9a-f-]{36}$/);
        const content = await fetch(`${server.url}/v1/uploads/${created.body.id}/content`, { headers: { 'x-user-id': user } });
        expect(content.status).toBe(200);
        expect(content.headers.get('content-disposition')).not.toMatch(/[\r\n\u0000]/);
        await content.arrayBuffer();
      }
      for (const file of await filesUnder(storage.dataDir))
        expect(file).toMatch(/^(files\/uploads\/\d{4}\/\d{2}\/[0-9a-f-]{36}|uploads\/.+\.json(\.lock)?)$/);
    });

    it('a client that disconnects mid-upload leaves no object and no row', async () => {
      const user = newUser();
      const before = await filesUnder(filesDir());
      const boundary = 'pgferryboundary';
      const head = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="cut.pdf"\r\nContent-Type: application/pdf\r\n\r\n`;
      await new Promise<void>((resolve) => {
        const url = new URL(`${server.url}/v1/uploads`);
        const req = httpRequest({
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          headers: { 'x-user-id': user, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(MAX) },
        });
        req.on('error', () => resolve());
        req.write(head);
        req.write(randomBytes(30_000));
        setTimeout(() => {
          req.destroy();
          resolve();
        }, 200);
      });
      await sleep(500);
      expect(await filesUnder(filesDir())).toEqual(before);
      expect((await call(server.url, 'GET', '/v1/uploads', { user })).body.items).toEqual([]);
    });

    it('DELETE → 204, bytes removed after the row is marked; then 404', async () => {
      const user = newUser();
      const created = await upload(server.url, user, randomBytes(500));
      const file = path.join(filesDir(), created.body.key);
      expect((await filesUnder(filesDir())).some((f) => path.join(filesDir(), f) === file)).toBe(true);
      expect((await call(server.url, 'DELETE', `/v1/uploads/${created.body.id}`, { user })).status).toBe(204);
      expect((await filesUnder(filesDir())).some((f) => path.join(filesDir(), f) === file)).toBe(false);
      expect((await call(server.url, 'GET', `/v1/uploads/${created.body.id}`, { user })).status).toBe(404);
      expect((await call(server.url, 'DELETE', `/v1/uploads/${created.body.id}`, { user })).status).toBe(404);
    });

    it('presign on local storage → 422 (direct uploads need S3)', async () => {
      const answer = await call(server.url, 'POST', '/v1/uploads/presign', {
        user: newUser(),
        body: { filename: 'a.pdf', contentType: 'application/pdf' },
      });
      expect(answer.status).toBe(422);
    });

    it('fuzz: random names, types and sizes → only 201/413/415, never 500, and every 201 reads back', async () => {
      const user = newUser();
      const types = ['application/pdf', 'image/png', 'text/html', 'application/x-msdownload', 'IMAGE/PNG', '', 'text/plain; charset=utf-8'];
      for (let i = 0; i < 25; i++) {
        const size = [0, 1, 1000, MAX, MAX + 1][i % 5] as number;
        const name = Buffer.from(randomBytes(1 + (i % 40)))
          .toString('latin1')
          .replace(/\u0000/g, '');
        const bytes = randomBytes(size);
        const answer = await upload(server.url, user, bytes, { filename: name || 'x', type: types[i % types.length] });
        expect([201, 413, 415], `${answer.status} ${JSON.stringify(answer.body)}`).toContain(answer.status);
        if (answer.status === 201) {
          const content = await fetch(`${server.url}/v1/uploads/${answer.body.id}/content`, { headers: { 'x-user-id': user } });
          expect(sha256(new Uint8Array(await content.arrayBuffer()))).toBe(sha256(bytes));
        }
      }
    });
  });
}

describe('uploads over HTTP, S3 object storage (s3rver on loopback)', () => {
  let storage: StorageFixture;
  let store: Store;
  let server: TestServer;
  let s3: S3TestServer;
  let objects: S3ObjectStorage;

  beforeAll(async () => {
    s3 = await startS3Server();
    storage = await createStorage('postgres');
    store = await storage.open();
    const env = {
      DATA_DIR: storage.dataDir,
      UPLOAD_MAX_BYTES: String(MAX),
      S3_BUCKET_NAME: s3.bucket,
      S3_ENDPOINT: s3.endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: s3.settings.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.settings.secretAccessKey,
    };
    server = await startServer({ store, config: testConfig(env) });
    objects = new S3ObjectStorage(s3.settings);
  });
  afterAll(async () => {
    await server?.close();
    await store?.close();
    await storage?.cleanup();
    await objects?.close();
    await s3?.close();
  });

  async function keys(): Promise<string[]> {
    const found: string[] = [];
    for await (const object of objects.list('')) found.push(object.key);
    return found.sort();
  }

  it('upload goes to S3; content redirects to a presigned URL that serves the bytes, or streams with redirect=false', async () => {
    const user = newUser();
    const bytes = randomBytes(20_000);
    const created = await upload(server.url, user, bytes);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ storage: 's3', bucket: s3.bucket, size: 20_000, sha256: sha256(bytes) });
    expect(await objects.head(created.body.key)).toMatchObject({ size: 20_000 });

    const redirect = await fetch(`${server.url}/v1/uploads/${created.body.id}/content`, {
      headers: { 'x-user-id': user },
      redirect: 'manual',
    });
    expect(redirect.status).toBe(302);
    const presigned = await fetch(redirect.headers.get('location') as string);
    expect(sha256(new Uint8Array(await presigned.arrayBuffer()))).toBe(sha256(bytes));

    const streamed = await fetch(`${server.url}/v1/uploads/${created.body.id}/content?redirect=false`, { headers: { 'x-user-id': user } });
    expect(sha256(new Uint8Array(await streamed.arrayBuffer()))).toBe(sha256(bytes));

    expect((await call(server.url, 'DELETE', `/v1/uploads/${created.body.id}`, { user })).status).toBe(204);
    expect(await objects.head(created.body.key)).toBeUndefined();
  });

  it('413 and 415 leave nothing in the bucket', async () => {
    const user = newUser();
    const before = await keys();
    expect((await upload(server.url, user, randomBytes(MAX + 10))).status).toBe(413);
    expect((await upload(server.url, user, randomBytes(10), { type: 'application/x-sh' })).status).toBe(415);
    expect(await keys()).toEqual(before);
  });

  it('S3 gone away → 503 UNAVAILABLE and no row; back again → uploads work', async () => {
    const user = newUser();
    await s3.stop();
    try {
      const down = await upload(server.url, user, randomBytes(2000));
      expect(down.status).toBe(503);
      expect(down.body.error.code).toBe('UNAVAILABLE');
    } finally {
      await s3.start();
    }
    expect((await call(server.url, 'GET', '/v1/uploads', { user })).body.items).toEqual([]);
    expect((await upload(server.url, user, randomBytes(2000))).status).toBe(201);
  });

  it('a client that disconnects mid-upload leaves no object in the bucket and no row', async () => {
    const user = newUser();
    const before = await keys();
    const boundary = 'pgferryboundary';
    await new Promise<void>((resolve) => {
      const url = new URL(`${server.url}/v1/uploads`);
      const req = httpRequest({
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: { 'x-user-id': user, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(MAX) },
      });
      req.on('error', () => resolve());
      req.write(
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="cut.pdf"\r\nContent-Type: application/pdf\r\n\r\n`,
      );
      req.write(randomBytes(30_000));
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 300);
    });
    await sleep(1000);
    expect(await keys()).toEqual(before);
    expect((await call(server.url, 'GET', '/v1/uploads', { user })).body.items).toEqual([]);
  });

  it('presigned PUT + complete: checked size and sha256 activate the row', async () => {
    const user = newUser();
    const bytes = randomBytes(3000);
    const started = await call(server.url, 'POST', '/v1/uploads/presign', {
      user,
      body: { filename: 'direct.png', contentType: 'image/png', size: bytes.length },
    });
    expect(started.status).toBe(201);
    expect(started.body.upload.status).toBe('pending');
    const id = started.body.upload.id;
    expect((await call(server.url, 'GET', '/v1/uploads', { user })).body.items).toEqual([]);

    const early = await call(server.url, 'POST', `/v1/uploads/${id}/complete`, { user, body: {} });
    expect(early.status).toBe(409);

    const put = await fetch(started.body.url, { method: 'PUT', body: bytes, headers: started.body.headers });
    expect(put.status).toBe(200);
    expect((await call(server.url, 'POST', `/v1/uploads/${id}/complete`, { user: newUser(), body: {} })).status).toBe(404);
    const done = await call(server.url, 'POST', `/v1/uploads/${id}/complete`, {
      user,
      body: { size: bytes.length, sha256: sha256(bytes) },
    });
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ status: 'active', size: 3000, sha256: sha256(bytes) });
    expect((await call(server.url, 'GET', '/v1/uploads', { user })).body.items.map((u: { id: string }) => u.id)).toEqual([id]);
  });

  it('complete with a wrong sha256 → 409 and the bytes are deleted; too large → 413; bad type/size at presign → 415/413', async () => {
    const user = newUser();
    const started = await call(server.url, 'POST', '/v1/uploads/presign', {
      user,
      body: { filename: 'a.pdf', contentType: 'application/pdf' },
    });
    await fetch(started.body.url, { method: 'PUT', body: randomBytes(100), headers: started.body.headers });
    const wrong = await call(server.url, 'POST', `/v1/uploads/${started.body.upload.id}/complete`, {
      user,
      body: { sha256: 'f'.repeat(64) },
    });
    expect(wrong.status).toBe(409);
    expect(await objects.head(started.body.upload.key)).toBeUndefined();

    const big = await call(server.url, 'POST', '/v1/uploads/presign', {
      user,
      body: { filename: 'b.pdf', contentType: 'application/pdf' },
    });
    await fetch(big.body.url, { method: 'PUT', body: randomBytes(MAX + 1), headers: big.body.headers });
    expect((await call(server.url, 'POST', `/v1/uploads/${big.body.upload.id}/complete`, { user })).status).toBe(413);
    expect(await objects.head(big.body.upload.key)).toBeUndefined();

    const badType = await call(server.url, 'POST', '/v1/uploads/presign', {
      user,
      body: { filename: 'x.exe', contentType: 'application/x-msdownload' },
    });
    expect(badType.status).toBe(415);
    const badSize = await call(server.url, 'POST', '/v1/uploads/presign', {
      user,
      body: { filename: 'x.pdf', contentType: 'application/pdf', size: MAX + 1 },
    });
    expect(badSize.status).toBe(413);
  });
});
