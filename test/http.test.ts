import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../src/errors.ts';
import type { Store } from '../src/store/types.ts';
import {
  BACKENDS,
  call,
  createStorage,
  isErrorBody,
  LogCapture,
  type StorageFixture,
  startServer,
  type TestServer,
  testConfig,
} from './helpers/http.ts';

/**
 * The REST API against a listening server, on both backends: persistence
 * across a restart, user isolation, quotas, the error contract, limits,
 * probes, docs, request ids, logs and graceful shutdown.
 */

const stage = {
  stage1: [{ model: 'm1', response: 'r1' }],
  stage2: [{ model: 'm1', ranking: 'FINAL RANKING: 1. Response A', parsed_ranking: ['Response A'] }],
  stage3: { model: 'chair', response: 'final' },
  metadata: { label_to_model: { 'Response A': 'm1' }, aggregate_rankings: [{ model: 'm1', average_rank: 1, rankings_count: 1 }] },
};

describe.each(BACKENDS)('HTTP API on %s', (backend) => {
  let storage: StorageFixture;
  let store: Store;
  let server: TestServer;
  const logs = new LogCapture();

  beforeAll(async () => {
    storage = await createStorage(backend);
    store = await storage.open();
    server = await startServer({ store, config: testConfig({ DATA_DIR: storage.dataDir }), logger: logs.logger });
  });
  afterAll(async () => {
    await server?.close();
    await store?.close();
    await storage?.cleanup();
  });

  const api = (method: string, url: string, options?: Parameters<typeof call>[3]) => call(server.url, method, url, options);

  it('creates a conversation, adds messages, and keeps everything across a restart', async () => {
    const created = await api('POST', '/v1/conversations', { user: 'alice', body: { title: 'Trip to Lisbon' } });
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe(`/v1/conversations/${created.body.id}`);
    expect(created.body).toMatchObject({ title: 'Trip to Lisbon', messageCount: 0, messages: [] });
    const id: string = created.body.id;

    const m1 = await api('POST', `/v1/conversations/${id}/messages`, { user: 'alice', body: { content: 'Where should I eat?' } });
    expect(m1.status).toBe(201);
    expect(m1.body.message).toMatchObject({ role: 'user', content: 'Where should I eat?' });
    expect(m1.body.usage).toMatchObject({ userId: 'alice', tier: 'free', daily: { used: 1, limit: 10, remaining: 9 } });
    const m2 = await api('POST', `/v1/conversations/${id}/assistant-messages`, { user: 'alice', body: stage });
    expect(m2.status).toBe(201);
    expect(m2.body).toMatchObject({ role: 'assistant', stage3: stage.stage3, metadata: stage.metadata });
    const renamed = await api('PATCH', `/v1/conversations/${id}`, { user: 'alice', body: { title: 'Lisbon' } });
    expect(renamed.status).toBe(200);
    expect(renamed.body).toMatchObject({ id, title: 'Lisbon', messageCount: 2 });
    const untitled = await api('POST', '/v1/conversations', { user: 'alice' });
    expect(untitled.status).toBe(201);
    expect(untitled.body.title).toBe('New Conversation');

    // Restart: a new store on the same data and a new app; the old ones are gone.
    await server.close();
    await store.close();
    store = await storage.open();
    server = await startServer({ store, config: testConfig({ DATA_DIR: storage.dataDir }), logger: logs.logger });

    const got = await api('GET', `/v1/conversations/${id}`, { user: 'alice' });
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ id, title: 'Lisbon', messageCount: 2, nextMessagesCursor: null });
    expect(got.body.messages).toEqual([
      expect.objectContaining({ role: 'user', position: 0, content: 'Where should I eat?' }),
      expect.objectContaining({ role: 'assistant', position: 1, ...stage }),
    ]);
    const list = await api('GET', '/v1/conversations', { user: 'alice' });
    expect(list.status).toBe(200);
    expect(list.body.items.map((c: { id: string }) => c.id).sort()).toEqual([id, untitled.body.id].sort());
    const usage = await api('GET', '/v1/usage', { user: 'alice' });
    expect(usage.body).toMatchObject({ tier: 'free', daily: { used: 1 }, monthly: { used: 1 }, totalQueries: 1 });
    const found = await api('GET', '/v1/conversations/search?q=EAT', { user: 'alice' });
    expect(found.body.items.map((c: { id: string }) => c.id)).toEqual([id]);

    const deleted = await api('DELETE', `/v1/conversations/${untitled.body.id}`, { user: 'alice' });
    expect(deleted.status).toBe(204);
    expect(deleted.text).toBe('');
    expect((await api('GET', `/v1/conversations/${untitled.body.id}`, { user: 'alice' })).status).toBe(404);
  });

  it('pages the list with limit and cursor, and pages messages', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await api('POST', '/v1/conversations', { user: 'pager', body: { title: `c${i}` } })).body.id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await api('GET', `/v1/conversations?limit=2${cursor ? `&cursor=${cursor}` : ''}`, { user: 'pager' });
      expect(page.status).toBe(200);
      expect(page.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.items.map((c: { id: string }) => c.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());

    const id = ids[0]!;
    for (let i = 0; i < 3; i++) await api('POST', `/v1/conversations/${id}/assistant-messages`, { user: 'pager', body: stage });
    const first = await api('GET', `/v1/conversations/${id}?messagesLimit=2`, { user: 'pager' });
    expect(first.body.messages).toHaveLength(2);
    const rest = await api('GET', `/v1/conversations/${id}?messagesCursor=${first.body.nextMessagesCursor}`, { user: 'pager' });
    expect(rest.body.messages.map((m: { position: number }) => m.position)).toEqual([2]);
  });

  it("gives user B 404 on every route naming user A's conversation, and never shows it", async () => {
    const a = await api('POST', '/v1/conversations', { user: 'user-a', body: { title: 'secret plans' } });
    const id: string = a.body.id;
    await api('POST', `/v1/conversations/${id}/messages`, { user: 'user-a', body: { content: 'the secret ingredient' } });

    const attempts: Array<[string, string, unknown]> = [
      ['GET', `/v1/conversations/${id}`, undefined],
      ['GET', `/v1/conversations/${id}?messagesLimit=1`, undefined],
      ['PATCH', `/v1/conversations/${id}`, { title: 'mine now' }],
      ['DELETE', `/v1/conversations/${id}`, undefined],
      ['POST', `/v1/conversations/${id}/messages`, { content: 'hello?' }],
      ['POST', `/v1/conversations/${id}/assistant-messages`, stage],
    ];
    for (const [method, url, body] of attempts) {
      const answer = await api(method, url, { user: 'user-b', body });
      expect(answer.status, `${method} ${url}`).toBe(404);
      expect(answer.body.error.code).toBe('NOT_FOUND');
      expect(answer.text).not.toContain('secret');
    }
    const b = await api('GET', '/v1/conversations', { user: 'user-b' });
    expect(b.body.items.map((c: { id: string }) => c.id)).not.toContain(id);
    for (const q of ['secret', 'ingredient', 'plans']) {
      const search = await api('GET', `/v1/conversations/search?q=${q}`, { user: 'user-b' });
      expect(search.status).toBe(200);
      expect(search.body.items).toEqual([]);
    }
    // B's refused message used none of B's quota; A's conversation is untouched.
    expect((await api('GET', '/v1/usage', { user: 'user-b' })).body.daily.used).toBe(0);
    const mine = await api('GET', `/v1/conversations/${id}`, { user: 'user-a' });
    expect(mine.body).toMatchObject({ title: 'secret plans', messageCount: 1 });
  });

  it('answers conflicts and bad input with the error contract', async () => {
    // Ids are minted by the server (test/http-idempotency.test.ts: "ids reveal nothing").
    const chosen = await api('POST', '/v1/conversations', { user: 'eve', body: { id: 'fixed-id-1' } });
    expect(chosen.status).toBe(400);
    expect(chosen.body.error.code).toBe('INVALID_INPUT');

    const cases: Array<[string, string, unknown, number, string]> = [
      ['POST', '/v1/conversations', { title: 12 }, 400, 'INVALID_INPUT'],
      ['POST', '/v1/conversations', { title: 'x'.repeat(501) }, 400, 'INVALID_INPUT'],
      ['POST', '/v1/conversations', { colour: 'red' }, 400, 'INVALID_INPUT'],
      ['POST', '/v1/conversations', { id: '../../etc/passwd' }, 400, 'INVALID_INPUT'],
      ['POST', '/v1/conversations', '{"title": ', 400, 'INVALID_INPUT'],
      ['POST', '/v1/conversations', '[]', 400, 'INVALID_INPUT'],
      ['POST', '/v1/conversations', '{"__proto__": {"x": 1}}', 400, 'INVALID_INPUT'],
      ['POST', '/v1/conversations/fixed-id-1/messages', { content: '' }, 400, 'INVALID_INPUT'],
      ['POST', '/v1/conversations/fixed-id-1/messages', { content: 'nul \u0000 byte' }, 400, 'INVALID_INPUT'],
      ['POST', '/v1/conversations/fixed-id-1/assistant-messages', { stage1: 'x', stage2: [], stage3: null }, 400, 'INVALID_INPUT'],
      // Not valid Unicode, or too deep: refused the same way on both backends.
      ['POST', '/v1/conversations/fixed-id-1/messages', '{"content": "lone \\ud800 surrogate"}', 400, 'INVALID_INPUT'],
      ['PATCH', '/v1/conversations/fixed-id-1', '{"title": "\\udc00"}', 400, 'INVALID_INPUT'],
      [
        'POST',
        '/v1/conversations/fixed-id-1/assistant-messages',
        '{"stage1": ["\\ud800"], "stage2": [], "stage3": null}',
        400,
        'INVALID_INPUT',
      ],
      [
        'POST',
        '/v1/conversations/fixed-id-1/assistant-messages',
        '{"stage1": [{"k\\u0000": 1}], "stage2": [], "stage3": null}',
        400,
        'INVALID_INPUT',
      ],
      [
        'POST',
        '/v1/conversations/fixed-id-1/assistant-messages',
        `{"stage1": ${'['.repeat(100)}${']'.repeat(100)}, "stage2": [], "stage3": null}`,
        400,
        'INVALID_INPUT',
      ],
      ['GET', '/v1/conversations/search?q=%00', undefined, 400, 'INVALID_INPUT'],
      ['GET', '/v1/conversations?limit=0', undefined, 400, 'INVALID_INPUT'],
      ['GET', '/v1/conversations?limit=abc', undefined, 400, 'INVALID_INPUT'],
      ['GET', '/v1/conversations?limit=101', undefined, 400, 'INVALID_INPUT'],
      ['GET', '/v1/conversations?cursor=not-a-cursor', undefined, 400, 'INVALID_INPUT'],
      ['GET', '/v1/conversations/search', undefined, 400, 'INVALID_INPUT'],
      ['GET', '/v1/conversations/has.dot', undefined, 400, 'INVALID_INPUT'],
      ['GET', `/v1/conversations/${'a'.repeat(129)}`, undefined, 400, 'INVALID_INPUT'],
      ['GET', '/v1/conversations/%E0%A4%A', undefined, 400, 'INVALID_INPUT'],
      ['GET', '/v1/conversations/nope', undefined, 404, 'NOT_FOUND'],
      ['GET', '/v1/nothing-here', undefined, 404, 'NOT_FOUND'],
    ];
    for (const [method, url, body, status, code] of cases) {
      const answer = await api(method, url, { user: 'eve', body });
      expect(answer.status, `${method} ${url} ${JSON.stringify(body)}`).toBe(status);
      expect(answer.body.error.code).toBe(code);
      expect(isErrorBody(answer.body)).toBe(true);
      expect(answer.body.error.requestId).toBe(answer.headers.get('x-request-id'));
      expect(answer.text).not.toMatch(/at .*\.ts:\d+|node_modules/);
    }
  });

  it('refuses a body over the limit (413) and a body that is not JSON (415)', async () => {
    const big = await api('POST', '/v1/conversations/x/messages', { user: 'eve', body: { content: 'x'.repeat(1_100_000) } });
    expect(big.status).toBe(413);
    expect(big.body.error.code).toBe('PAYLOAD_TOO_LARGE');
    const plain = await api('POST', '/v1/conversations', { user: 'eve', body: 'title=hi', headers: { 'content-type': 'text/plain' } });
    expect(plain.status).toBe(415);
    expect(plain.body.error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    const form = await api('POST', '/v1/conversations', {
      user: 'eve',
      body: 'title=hi',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(form.status).toBe(415);
    // Just under the limit is fine: a ~1 MB message round-trips.
    const c = await api('POST', '/v1/conversations', { user: 'big', body: {} });
    const near = await api('POST', `/v1/conversations/${c.body.id}/messages`, { user: 'big', body: { content: 'y'.repeat(1_000_000) } });
    expect(near.status).toBe(201);
  });

  it('enforces a smaller configured body limit', async () => {
    const small = await startServer({ store, config: testConfig({ BODY_LIMIT_BYTES: '2048' }) });
    try {
      const answer = await call(small.url, 'POST', '/v1/conversations', { user: 'eve', body: { title: 'x'.repeat(3000) } });
      expect(answer.status).toBe(413);
    } finally {
      await small.close();
    }
  });

  it('needs the admin role to set a tier; an unknown tier is 422', async () => {
    const denied = await api('PUT', '/v1/admin/users/zoe/tier', { user: 'zoe', body: { tier: 'enterprise' } });
    expect(denied.status).toBe(403);
    expect(denied.body.error.code).toBe('FORBIDDEN');
    const admin = { 'x-user-role': 'admin' };
    const set = await api('PUT', '/v1/admin/users/zoe/tier', { user: 'root', headers: admin, body: { tier: 'pro' } });
    expect(set.status).toBe(200);
    expect(set.body).toMatchObject({ userId: 'zoe', tier: 'pro', daily: { limit: 100 } });
    expect((await api('GET', '/v1/usage', { user: 'zoe' })).body.tier).toBe('pro');
    const unknown = await api('PUT', '/v1/admin/users/zoe/tier', { user: 'root', headers: admin, body: { tier: 'platinum' } });
    expect(unknown.status).toBe(422);
    expect(unknown.body.error.code).toBe('UNPROCESSABLE');
    const badUser = await api('PUT', '/v1/admin/users/a..b/tier', { user: 'root', headers: admin, body: { tier: 'pro' } });
    expect(badUser.status).toBe(400);
  });

  it('echoes X-Request-Id, generates one otherwise, and logs each request with its latency', async () => {
    const given = await api('GET', '/v1/usage', { user: 'ids', headers: { 'x-request-id': 'req-123' } });
    expect(given.headers.get('x-request-id')).toBe('req-123');
    const generated = await api('GET', '/v1/usage', { user: 'ids', headers: { 'x-request-id': 'bad id with spaces' } });
    expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    // The line is written in onResponse, just after the answer left: poll briefly.
    const find = () => logs.records().find((r) => r.requestId === 'req-123' && r.msg === 'request completed');
    for (let i = 0; i < 100 && !find(); i++) await sleep(20);
    const line = find();
    expect(line).toMatchObject({ method: 'GET', route: '/v1/usage', statusCode: 200, userId: 'ids' });
    expect(typeof line?.responseTimeMs).toBe('number');
  });

  it('serves /healthz, /readyz with backend and mode, and the OpenAPI docs', async () => {
    expect((await api('GET', '/healthz')).body).toEqual({ status: 'ok' });
    const ready = await api('GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ready', backend, mode: backend });

    const spec = await api('GET', '/docs/json');
    expect(spec.body.openapi).toMatch(/^3\./);
    const routes = Object.entries(spec.body.paths as Record<string, object>).flatMap(([p, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`),
    );
    expect(routes.sort()).toEqual(
      [
        'POST /v1/conversations',
        'GET /v1/conversations',
        'GET /v1/conversations/search',
        'GET /v1/conversations/{id}',
        'PATCH /v1/conversations/{id}',
        'DELETE /v1/conversations/{id}',
        'POST /v1/conversations/{id}/messages',
        'POST /v1/conversations/{id}/assistant-messages',
        'GET /v1/usage',
        'POST /v1/uploads',
        'GET /v1/uploads',
        'GET /v1/uploads/{id}',
        'GET /v1/uploads/{id}/content',
        'DELETE /v1/uploads/{id}',
        'POST /v1/uploads/presign',
        'POST /v1/uploads/{id}/complete',
        'PUT /v1/admin/users/{userId}/tier',
        'POST /v1/submissions',
        'GET /v1/submissions',
        'GET /v1/submissions/{id}',
        'PATCH /v1/submissions/{id}',
        'DELETE /v1/submissions/{id}',
        'GET /v1/submissions/{id}/files',
        'POST /v1/submissions/{id}/files',
        'GET /v1/submissions/{id}/jobs',
        'POST /v1/submissions/{id}/jobs',
        'GET /v1/jobs/{id}',
        'POST /v1/jobs/{id}/start',
        'POST /v1/jobs/{id}/progress',
        'POST /v1/jobs/{id}/finish',
        'POST /v1/jobs/{id}/fail',
        'GET /v1/audit',
        'GET /healthz',
        'GET /readyz',
      ].sort(),
    );
    // The validating schema is the documented one.
    const create = spec.body.paths['/v1/conversations'].post;
    expect(create.requestBody.content['application/json'].schema.properties.title.maxLength).toBe(500);
    expect(spec.body.components.schemas.Conversation).toBeDefined();

    const page = await fetch(`${server.url}/docs`);
    expect(page.headers.get('content-type')).toContain('text/html');
    const html = await page.text();
    expect(html).toContain('/v1/conversations/{id}/messages');
    expect(html).not.toMatch(/<script[^>]+src=/);
  });

  it('finishes an in-flight request during a graceful shutdown, then refuses connections', async () => {
    // A store whose list takes 400 ms and says when it started: close() begins while the request is in the handler.
    let started!: () => void;
    const inHandler = new Promise<void>((resolve) => {
      started = resolve;
    });
    const slow: Store = {
      ...store,
      conversations: {
        ...store.conversations,
        list: async (userId, options) => {
          started();
          await sleep(400);
          return store.conversations.list(userId, options);
        },
      },
      close: async () => {},
    };
    const temp = await startServer({ store: slow, config: testConfig() });
    const inFlight = call(temp.url, 'GET', '/v1/conversations', { user: 'alice' });
    await inHandler;
    const closing = temp.close();
    const answer = await inFlight;
    expect(answer.status).toBe(200);
    await closing;
    await expect(fetch(`${temp.url}/healthz`)).rejects.toThrow();
  });
});

describe.each(BACKENDS)('quota on %s', (backend) => {
  let storage: StorageFixture;
  let store: Store;
  let server: TestServer;

  beforeAll(async () => {
    storage = await createStorage(backend);
    store = await storage.open({ TIER_LIMITS: '{"free":{"daily":3,"monthly":100}}' });
    server = await startServer({ store, config: testConfig() });
  });
  afterAll(async () => {
    await server?.close();
    await store?.close();
    await storage?.cleanup();
  });

  it('with a limit of 3, the 4th message is 429 with Retry-After, and the conversation holds exactly 3', async () => {
    const c = await call(server.url, 'POST', '/v1/conversations', { user: 'quota-user', body: { title: 'q' } });
    const id: string = c.body.id;
    for (let i = 1; i <= 3; i++) {
      const ok = await call(server.url, 'POST', `/v1/conversations/${id}/messages`, { user: 'quota-user', body: { content: `m${i}` } });
      expect(ok.status).toBe(201);
      expect(ok.body.usage.daily).toMatchObject({ used: i, limit: 3, remaining: 3 - i });
    }
    const refused = await call(server.url, 'POST', `/v1/conversations/${id}/messages`, { user: 'quota-user', body: { content: 'm4' } });
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe('QUOTA_EXCEEDED');
    expect(refused.body.usage).toMatchObject({ userId: 'quota-user', daily: { used: 3, limit: 3, remaining: 0 } });
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(86_400);
    expect(Date.now() + retryAfter * 1000).toBeGreaterThanOrEqual(Date.parse(refused.body.usage.daily.resetsAt) - 1000);

    const conversation = await call(server.url, 'GET', `/v1/conversations/${id}`, { user: 'quota-user' });
    expect(conversation.body.messageCount).toBe(3);
    expect(conversation.body.messages.map((m: { content: string }) => m.content)).toEqual(['m1', 'm2', 'm3']);
    expect((await call(server.url, 'GET', '/v1/usage', { user: 'quota-user' })).body.daily.used).toBe(3);
  });

  it('counts concurrent messages exactly: 10 at once with 3 left gives 3 x 201 and 7 x 429', async () => {
    const c = await call(server.url, 'POST', '/v1/conversations', { user: 'racer', body: {} });
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        call(server.url, 'POST', `/v1/conversations/${c.body.id}/messages`, { user: 'racer', body: { content: `r${i}` } }),
      ),
    );
    expect(answers.filter((a) => a.status === 201)).toHaveLength(3);
    expect(answers.filter((a) => a.status === 429)).toHaveLength(7);
    const conversation = await call(server.url, 'GET', `/v1/conversations/${c.body.id}`, { user: 'racer' });
    expect(conversation.body.messageCount).toBe(3);
  });
});

describe('docs/http-api.md', () => {
  it('lists every error code with its HTTP status', () => {
    const doc = readFileSync(new URL('../docs/http-api.md', import.meta.url), 'utf8');
    for (const [code, { status }] of Object.entries(ERROR_CODES)) expect(doc).toContain(`| \`${code}\` | ${status} |`);
  });
});

describe('pgferry serve (the CLI command)', () => {
  const bin = fileURLToPath(new URL('../bin/pgferry.js', import.meta.url));

  function run(args: string[], env: Record<string, string>) {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    return { child, exited, stderr: () => stderr };
  }

  it('serves the JSON backend in dev mode, logs the backend once, and exits 0 on SIGTERM', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-serve-'));
    try {
      const proc = run(['serve', '--port', '0', '--host', '127.0.0.1'], { AUTH_MODE: 'dev', DATA_DIR: dataDir, LOG_LEVEL: 'info' });
      const deadline = Date.now() + 20_000;
      let url: string | undefined;
      while (!url && Date.now() < deadline) {
        url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(proc.stderr())?.[1];
        if (!url) await sleep(50);
      }
      expect(url, proc.stderr()).toBeDefined();
      const created = await call(url!, 'POST', '/v1/conversations', { user: 'alice', body: { title: 'from the CLI' } });
      expect(created.status).toBe(201);
      const list = await call(url!, 'GET', '/v1/conversations', { user: 'alice' });
      expect(list.body.items.map((c: { title: string }) => c.title)).toEqual(['from the CLI']);
      proc.child.kill('SIGTERM');
      expect(await proc.exited).toBe(0);
      const lines = proc
        .stderr()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.filter((l) => String(l.msg).startsWith('pgferry serve: listening'))).toEqual([
        expect.objectContaining({ backend: 'json', mode: 'json', auth: 'dev (X-User-Id)' }),
      ]);
      expect(lines.some((l) => l.msg === 'shutdown complete')).toBe(true);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses to start without a way to verify tokens (exit 2, names the variables)', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-serve-'));
    try {
      const proc = run(['serve', '--port', '0'], { DATA_DIR: dataDir });
      expect(await proc.exited).toBe(2);
      expect(proc.stderr()).toMatch(/AUTH_JWT_SECRET or AUTH_JWKS_URL/);
      const prod = run(['serve', '--port', '0'], { DATA_DIR: dataDir, AUTH_MODE: 'dev', NODE_ENV: 'production' });
      expect(await prod.exited).toBe(2);
      expect(prod.stderr()).toMatch(/AUTH_MODE/);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
