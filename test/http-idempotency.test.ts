import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/http/app.ts';
import { listen } from '../src/http/server.ts';
import { createLogger } from '../src/log.ts';
import { openStore } from '../src/store/open.ts';
import type { IdempotentAnswer, Store } from '../src/store/types.ts';
import { BACKENDS, call, createStorage, type StorageFixture, serverOnOwnPostgres, type TestServer, testConfig } from './helpers/http.ts';

/**
 * Safe retries: the Idempotency-Key header on both backends. The issue's
 * case is an answer lost after the write committed (503 from a proxy or a
 * PostgreSQL restart): the retry with the same key must store one message and
 * count one query. Here the answer is lost for real — an onSend hook replaces
 * the committed 201 with a 503, as a proxy that lost the upstream answer
 * would — and, on PostgreSQL, across a real server stop/start.
 */

const LOSE_ANSWER = 'x-test-lose-answer';

async function startLossyServer(store: Store, dataDir: string): Promise<TestServer> {
  const logger = createLogger({ level: 'silent' });
  const app = await buildApp({ store, config: testConfig({ DATA_DIR: dataDir }), logger });
  // After the handler (and its commit): the client never sees the answer, only a 503.
  app.addHook('onSend', async (request, reply, payload) => {
    if (request.headers[LOSE_ANSWER] !== '1') return payload;
    reply.code(503).header('retry-after', '5').type('application/json; charset=utf-8');
    return JSON.stringify({ error: { code: 'UNAVAILABLE', message: 'upstream answer lost', requestId: request.id } });
  });
  const server = await listen(app, { host: '127.0.0.1', port: 0, logger, signals: [], shutdownTimeoutMs: 5000 });
  return { app, url: server.url, close: server.close };
}

describe.each(BACKENDS)('Idempotency-Key on %s', (backend) => {
  let storage: StorageFixture;
  let store: Store;
  let server: TestServer;

  beforeAll(async () => {
    storage = await createStorage(backend);
    store = await storage.open();
    server = await startLossyServer(store, storage.dataDir);
  });
  afterAll(async () => {
    await server?.close();
    await store?.close();
    await storage?.cleanup();
  });

  const api = (method: string, url: string, user: string, options: { key?: string; body?: unknown; lose?: boolean } = {}) =>
    call(server.url, method, url, {
      user,
      body: options.body,
      headers: { ...(options.key ? { 'idempotency-key': options.key } : {}), ...(options.lose ? { [LOSE_ANSWER]: '1' } : {}) },
    });

  it('a POST retried with the same key after a lost answer (503) stores one message and counts one query', async () => {
    const { body: conversation } = await api('POST', '/v1/conversations', 'ivy', { body: { title: 'retries' } });
    const url = `/v1/conversations/${conversation.id}/messages`;

    const lost = await api('POST', url, 'ivy', { key: 'send-1', body: { content: 'hello once' }, lose: true });
    expect(lost.status).toBe(503); // the client cannot tell whether it was written: it retries, as the docs say

    const retried = await api('POST', url, 'ivy', { key: 'send-1', body: { content: 'hello once' } });
    expect(retried.status).toBe(201);
    expect(retried.headers.get('idempotent-replayed')).toBe('true');
    expect(retried.body.message).toMatchObject({ role: 'user', position: 0, content: 'hello once' });
    expect(retried.body.usage.daily.used).toBe(1);
    const again = await api('POST', url, 'ivy', { key: 'send-1', body: { content: 'hello once' } });
    expect(again.text).toBe(retried.text);

    const stored = await api('GET', `/v1/conversations/${conversation.id}`, 'ivy');
    expect(stored.body.messages.map((m: { content: string }) => m.content)).toEqual(['hello once']);
    expect((await api('GET', '/v1/usage', 'ivy')).body.daily.used).toBe(1);
  });

  it('replays the first answer — status, body, Location — and creates nothing again', async () => {
    const first = await api('POST', '/v1/conversations', 'jay', { key: 'create-1', body: { title: 'once' } });
    expect(first.status).toBe(201);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const second = await api('POST', '/v1/conversations', 'jay', { key: 'create-1', body: { title: 'once' } });
    expect(second.status).toBe(201);
    expect(second.text).toBe(first.text);
    expect(second.headers.get('location')).toBe(first.headers.get('location'));
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    // Key order in the body does not make another request.
    const list = await api('GET', '/v1/conversations', 'jay');
    expect(list.body.items).toHaveLength(1);
  });

  it('the same key with another body or path is 422; nothing is written', async () => {
    const first = await api('POST', '/v1/conversations', 'kim', { key: 'k', body: { title: 'a' } });
    expect(first.status).toBe(201);
    const otherBody = await api('POST', '/v1/conversations', 'kim', { key: 'k', body: { title: 'b' } });
    expect(otherBody.status).toBe(422);
    expect(otherBody.body.error).toMatchObject({ code: 'UNPROCESSABLE' });
    const otherPath = await api('PATCH', `/v1/conversations/${first.body.id}`, 'kim', { key: 'k', body: { title: 'a' } });
    expect(otherPath.status).toBe(422);
    expect((await api('GET', '/v1/conversations', 'kim')).body.items.map((c: { title: string }) => c.title)).toEqual(['a']);
  });

  it('keys are per user: the same key of another user never matches', async () => {
    const mine = await api('POST', '/v1/conversations', 'lea', { key: 'shared-key', body: { title: 'same' } });
    const theirs = await api('POST', '/v1/conversations', 'max', { key: 'shared-key', body: { title: 'same' } });
    expect(theirs.status).toBe(201);
    expect(theirs.headers.get('idempotent-replayed')).toBeNull();
    expect(theirs.body.id).not.toBe(mine.body.id);
    expect((await api('GET', `/v1/conversations/${mine.body.id}`, 'max')).status).toBe(404);
  });

  it('PATCH and DELETE replay too: a retried delete is 204 again, not 404', async () => {
    const { body: c } = await api('POST', '/v1/conversations', 'ned', { body: { title: 'x' } });
    const renamed = await api('PATCH', `/v1/conversations/${c.id}`, 'ned', { key: 'rename', body: { title: 'y' } });
    expect((await api('PATCH', `/v1/conversations/${c.id}`, 'ned', { key: 'rename', body: { title: 'y' } })).text).toBe(renamed.text);
    const deleted = await api('DELETE', `/v1/conversations/${c.id}`, 'ned', { key: 'del', lose: true });
    expect(deleted.status).toBe(503);
    const retried = await api('DELETE', `/v1/conversations/${c.id}`, 'ned', { key: 'del' });
    expect(retried.status).toBe(204);
    expect(retried.headers.get('idempotent-replayed')).toBe('true');
    expect((await api('DELETE', `/v1/conversations/${c.id}`, 'ned', { key: 'del-2' })).status).toBe(404);
  });

  it('a failed request keeps nothing: the key stays unused and a retry runs', async () => {
    const missing = await api('POST', '/v1/conversations/nope/messages', 'oda', { key: 'm', body: { content: 'x' } });
    expect(missing.status).toBe(404);
    expect((await api('GET', '/v1/usage', 'oda')).body.daily.used).toBe(0);
    const { body: c } = await api('POST', '/v1/conversations', 'oda', { body: {} });
    const ok = await api('POST', `/v1/conversations/${c.id}/messages`, 'oda', { key: 'm2', body: { content: 'x' } });
    expect(ok.status).toBe(201);
  });

  it('refuses a malformed key with 400', async () => {
    for (const key of ['x'.repeat(256), 'has space']) {
      const answer = await api('POST', '/v1/conversations', 'pia', { key, body: {} });
      expect(answer.status, key.slice(0, 20)).toBe(400);
      expect(answer.body.error.code).toBe('INVALID_INPUT');
    }
    expect((await api('GET', '/v1/conversations', 'pia')).body.items).toHaveLength(0);
  });

  it('a key still in flight is 409 (CONFLICT), for that user only', async () => {
    const answer: IdempotentAnswer = { status: 200, body: '{}', headers: {} };
    const outcome = await store.idempotency.run('quinn', 'busy', 'h', async () => {
      await expect(store.idempotency.run('quinn', 'busy', 'h', async () => answer)).rejects.toMatchObject({ code: 'CONFLICT' });
      expect((await store.idempotency.run('rosa', 'busy', 'h', async () => answer)).replayed).toBe(false);
      return answer;
    });
    expect(outcome).toEqual({ replayed: false, answer });
    expect(await store.idempotency.run('quinn', 'busy', 'h', async () => ({ ...answer, status: 500 }))).toEqual({ replayed: true, answer });
  });

  it('documents the header on every write route (OpenAPI)', async () => {
    const spec = (await call(server.url, 'GET', '/docs/json')).body;
    for (const [route, methods] of Object.entries(
      spec.paths as Record<string, Record<string, { parameters?: Array<{ in: string; name: string }> }>>,
    )) {
      for (const [method, operation] of Object.entries(methods)) {
        const documented = (operation.parameters ?? []).some((p) => p.in === 'header' && p.name === 'idempotency-key');
        expect(documented, `${method} ${route}`).toBe(method !== 'get');
      }
    }
  });
});

describe('Idempotency-Key expiry (24 h)', () => {
  for (const backend of BACKENDS) {
    it(`on ${backend}: after 24 h the key is forgotten and the request runs again`, async () => {
      const storage = await createStorage(backend);
      let now = new Date('2025-03-01T10:00:00Z');
      const store = await openStore({
        env: { DATA_DIR: storage.dataDir, ...(storage.databaseUrl ? { DATABASE_URL: storage.databaseUrl, STORAGE_MODE: 'postgres' } : {}) },
        logger: createLogger({ level: 'silent' }),
        migrate: false,
        clock: () => now,
      });
      try {
        let runs = 0;
        const work = async () => ({ status: 201, body: String(++runs), headers: {} });
        await store.idempotency.run('sam', 'k', 'h', work);
        now = new Date('2025-03-02T09:59:00Z');
        expect((await store.idempotency.run('sam', 'k', 'h', work)).replayed).toBe(true);
        now = new Date('2025-03-02T10:00:01Z');
        expect(await store.idempotency.run('sam', 'k', 'other', work)).toMatchObject({ replayed: false, answer: { body: '2' } });
      } finally {
        await store.close();
        await storage.cleanup();
      }
    });
  }
});

describe('Idempotency-Key across a real PostgreSQL stop/start', () => {
  const suite = serverOnOwnPostgres('pgferry-idem-outage');

  it('the 503 of a restart, retried with the same key, stores one message and counts one query', async () => {
    const send = (key: string) =>
      call(suite.server.url, 'POST', `/v1/conversations/${id}/messages`, {
        user: 'tom',
        body: { content: 'during restart' },
        headers: { 'idempotency-key': key },
      });
    const created = await call(suite.server.url, 'POST', '/v1/conversations', { user: 'tom', body: { title: 't' } });
    const id: string = created.body.id;
    await suite.stopDatabase();
    const during = await send('restart-1');
    expect(during.status).toBe(503);
    await suite.startDatabase();
    const deadline = Date.now() + 45_000;
    let retried = await send('restart-1');
    while (retried.status === 503 && Date.now() < deadline) {
      await sleep(250);
      retried = await send('restart-1');
    }
    expect(retried.status).toBe(201);
    const again = await send('restart-1');
    expect(again.text).toBe(retried.text);
    const conversation = await call(suite.server.url, 'GET', `/v1/conversations/${id}`, { user: 'tom' });
    expect(conversation.body.messages).toHaveLength(1);
    expect((await call(suite.server.url, 'GET', '/v1/usage', { user: 'tom' })).body.daily.used).toBe(1);
  }, 120_000);
});
