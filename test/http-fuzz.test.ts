import http from 'node:http';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../src/store/types.ts';
import { BACKENDS, createStorage, isErrorBody, type StorageFixture, startServer, type TestServer, testConfig } from './helpers/http.ts';

/**
 * Property-based fuzzing of every route's params, query, body and headers
 * against a listening server, on both backends: whatever the input, the
 * answer is never a 5xx, every 4xx has the error body, and the server keeps
 * answering. Requests go through a raw http client so paths reach the server
 * exactly as generated (fetch would normalise them).
 */

const RUNS = Number(process.env.FUZZ_RUNS ?? 120);

interface Raw {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

function send(
  baseUrl: string,
  agent: http.Agent,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<Raw> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, method, path, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const ROUTES: Array<[string, string]> = [
  ['POST', '/v1/conversations'],
  ['GET', '/v1/conversations'],
  ['GET', '/v1/conversations/search'],
  ['GET', '/v1/conversations/:id'],
  ['PATCH', '/v1/conversations/:id'],
  ['DELETE', '/v1/conversations/:id'],
  ['POST', '/v1/conversations/:id/messages'],
  ['POST', '/v1/conversations/:id/assistant-messages'],
  ['GET', '/v1/usage'],
  ['PUT', '/v1/admin/users/:userId/tier'],
  ['POST', '/v1/submissions'],
  ['GET', '/v1/submissions'],
  ['GET', '/v1/submissions/:id'],
  ['PATCH', '/v1/submissions/:id'],
  ['DELETE', '/v1/submissions/:id'],
  ['GET', '/v1/submissions/:id/files'],
  ['POST', '/v1/submissions/:id/files'],
  ['GET', '/v1/submissions/:id/jobs'],
  ['POST', '/v1/submissions/:id/jobs'],
  ['GET', '/v1/jobs/:id'],
  ['POST', '/v1/jobs/:id/start'],
  ['POST', '/v1/jobs/:id/progress'],
  ['POST', '/v1/jobs/:id/finish'],
  ['POST', '/v1/jobs/:id/fail'],
  ['GET', '/v1/audit'],
  ['GET', '/healthz'],
  ['GET', '/readyz'],
];

/** Lone surrogates cannot be percent-encoded; they are still fuzzed inside JSON bodies. */
function wellFormed(text: string): boolean {
  try {
    encodeURIComponent(text);
    return true;
  } catch {
    return false;
  }
}

const unicode = fc.oneof(
  { weight: 5, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.constantFrom('\ud800', 'a\udc00b', '\u0000', 'x\u0000y', '\ud83d\ude00', '\uffff', '\u202e') },
);
const ascii = fc.string({ unit: 'binary-ascii', maxLength: 40 });
const unit = fc.oneof(
  { weight: 30, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  fc.constantFrom('\ud800', '\udc00', '\u0000'),
);
const json = fc.jsonValue({ maxDepth: 4, stringUnit: unit });
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Path segments: hostile, random, near-valid, and (sometimes) a real id. */
const segment = (realIds: string[]) =>
  fc.oneof(
    fc.constantFrom(
      '..',
      '.',
      '%2e%2e',
      '..%2f..%2fetc%2fpasswd',
      '%2F',
      'a%2Fb',
      '%00',
      '%zz',
      '%E0%A4%A',
      'search',
      'a'.repeat(129),
      'a'.repeat(600),
      'CON',
      'x..y',
      '-leading',
      '%20',
      '',
    ),
    ascii.map(encodeURIComponent),
    unicode.filter(wellFormed).map(encodeURIComponent),
    fc.stringMatching(/^[A-Za-z0-9_.@|+=:-]{1,140}$/).map(encodeURIComponent),
    ...(realIds.length > 0 ? [fc.constantFrom(...realIds)] : []),
  );

const queryValue = fc.oneof(
  ascii,
  unicode.filter(wellFormed),
  fc.integer().map(String),
  fc.constantFrom('-1', '0', '1', '50', '100', '101', '1000', '1001', '1e3', '0x10', ' 5', '5 ', '1.5', '', 'null', '[]'),
  json.map(b64),
  fc.tuple(fc.string(), fc.string()).map(b64),
  fc.tuple(fc.date({ noInvalidDate: false }).map(String), ascii).map(b64),
);
const queryKey = fc.oneof(
  fc.constantFrom('limit', 'cursor', 'q', 'messagesLimit', 'messagesCursor', '__proto__', 'constructor'),
  fc.constantFrom('module', 'status', 'visitDateFrom', 'visitDateTo', 'siteName', 'userId', 'action', 'resourceId', 'from', 'to'),
  ascii,
);
const queryString = fc.array(fc.tuple(queryKey, queryValue), { maxLength: 4 }).map((pairs) => {
  const params = new URLSearchParams();
  for (const [k, v] of pairs) params.append(k, v);
  const text = params.toString();
  return text ? `?${text}` : '';
});

/** Bodies: shaped like the real ones with wrong or extreme values, arbitrary JSON, and not-JSON. */
const body = fc.oneof(
  fc.record({ id: fc.oneof(json, segment([])), title: json }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
  fc.record({ title: fc.oneof(unicode, json) }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
  fc.record({ content: fc.oneof(unicode, json, fc.constant('\u0000')) }).map((v) => JSON.stringify(v)),
  fc
    .record(
      {
        stage1: fc.oneof(fc.array(json, { maxLength: 4 }), json),
        stage2: fc.oneof(fc.array(json, { maxLength: 4 }), json),
        stage3: fc.oneof(fc.constant(null), fc.dictionary(unicode, json, { maxKeys: 4 }), json),
        metadata: fc.oneof(fc.dictionary(unicode, json, { maxKeys: 4 }), json),
      },
      { requiredKeys: ['stage1', 'stage2', 'stage3'] },
    )
    .map((v) => JSON.stringify(v)),
  fc.record({ tier: fc.oneof(fc.constantFrom('free', 'pro', 'enterprise', 'FREE', 'platinum', ''), json) }).map((v) => JSON.stringify(v)),
  // Seed 002's bodies: submissions, status, files, jobs and their transitions.
  fc
    .record(
      {
        module: fc.oneof(fc.constantFrom('civil', 'hvac_mep', 'cleaning', 'HVAC', ''), json),
        formData: fc.oneof(fc.dictionary(unicode, json, { maxKeys: 5 }), json),
        status: fc.oneof(fc.constantFrom('pending', 'completed', 'done'), json),
        userId: fc.oneof(fc.constant(null), userIdText(), json),
        id: segment([]),
      },
      { requiredKeys: [] },
    )
    .map((v) => JSON.stringify(v)),
  fc
    .record(
      {
        url: fc.oneof(unicode, json),
        fileSize: fc.oneof(fc.integer(), json),
        isCloud: json,
        field: fc.oneof(unicode, json),
        meta: fc.oneof(fc.dictionary(unicode, json, { maxKeys: 4 }), json),
      },
      { requiredKeys: [] },
    )
    .map((v) => JSON.stringify(v)),
  fc
    .record(
      { progress: fc.oneof(fc.integer({ min: -5, max: 120 }), json), results: json, error: fc.oneof(unicode, json) },
      { requiredKeys: [] },
    )
    .map((v) => JSON.stringify(v)),
  json.map((v) => JSON.stringify(v)),
  unicode,
  fc.constantFrom(
    '',
    '{',
    'null',
    '[]',
    '""',
    'NaN',
    '1e999',
    '{"title": "\\ud800"}',
    '{"__proto__": {"admin": true}}',
    '{"constructor": {"prototype": {"admin": true}}}',
    `{"stage1": ${'['.repeat(5000)}${']'.repeat(5000)}, "stage2": [], "stage3": null}`,
    `{"stage1": [${'{"a":'.repeat(200)}1${'}'.repeat(200)}], "stage2": [], "stage3": null}`,
  ),
);

const contentType = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON') },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/jsonx',
      'application/json; charset=latin1',
      '',
    ),
  },
);

function userIdText() {
  return fc.constantFrom('fuzzer', 'other-user', '', '..', 'a'.repeat(200));
}

const userId = fc.oneof(
  fc.constantFrom('fuzzer', 'fuzzer', 'other-user', '', '..', 'a'.repeat(200), 'auth0|abc', 'me@example.com'),
  fc.stringMatching(/^[ -~]{0,40}$/),
);

describe.each(BACKENDS)('fuzzing every route on %s', (backend) => {
  let storage: StorageFixture;
  let store: Store;
  let server: TestServer;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const realIds: string[] = [];
  const seen = new Map<number, number>();

  beforeAll(async () => {
    storage = await createStorage(backend);
    store = await storage.open({ TIER_LIMITS: '{"free":{"daily":null,"monthly":null}}' });
    server = await startServer({ store, config: testConfig({ BODY_LIMIT_BYTES: '65536' }) });
    for (let i = 0; i < 2; i++) {
      const c = await store.conversations.create('fuzzer', { title: `real ${i}` });
      await store.conversations.addUserMessage('fuzzer', c.id, 'hello');
      realIds.push(c.id);
      const s = await store.submissions.create({ userId: 'fuzzer' }, { module: 'civil', formData: { fields: { project_name: `p${i}` } } });
      const job = await store.jobs.create({ userId: 'fuzzer' }, s.id);
      realIds.push(s.id, job.id);
    }
  });
  afterAll(async () => {
    agent.destroy();
    await server?.close();
    await store?.close();
    await storage?.cleanup();
  });

  async function check(method: string, path: string, headers: Record<string, string>, payload?: string): Promise<void> {
    const answer = await send(server.url, agent, method, path, headers, payload);
    seen.set(answer.status, (seen.get(answer.status) ?? 0) + 1);
    const where = `${method} ${path} ${JSON.stringify(headers)} ${payload?.slice(0, 200)}`;
    expect(answer.status, `${where} → ${answer.text.slice(0, 300)}`).toBeLessThan(500);
    if (answer.status >= 400) {
      expect(isErrorBody(JSON.parse(answer.text)), where).toBe(true);
      expect(answer.text).not.toMatch(/\n\s+at |node_modules/);
    }
  }

  const fill = (template: string, id: string) => template.replace(':id', id).replace(':userId', id);

  it('params and query: only 4xx for bad input, never 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ROUTES), segment(realIds), queryString, async ([method, template], id, query) => {
        const payload = method === 'GET' || method === 'DELETE' ? undefined : '{}';
        const headers: Record<string, string> = { 'x-user-id': 'fuzzer', 'x-user-role': 'admin' };
        if (payload !== undefined) headers['content-type'] = 'application/json';
        await check(method, fill(template, id) + query, headers, payload);
      }),
      { numRuns: RUNS },
    );
  });

  it('bodies and content types: only 4xx for bad input, never 5xx', async () => {
    const writes = ROUTES.filter(([m]) => m !== 'GET' && m !== 'DELETE');
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...writes),
        fc.constantFrom(...realIds),
        body,
        contentType,
        async ([method, template], id, payload, type) => {
          const headers: Record<string, string> = { 'x-user-id': 'fuzzer', 'x-user-role': 'admin' };
          if (type) headers['content-type'] = type;
          await check(method, fill(template, template.includes(':userId') ? 'fuzzer' : id), headers, payload);
        },
      ),
      { numRuns: RUNS * 3 },
    );
  });

  it('credentials and methods: only 4xx, never 5xx', async () => {
    const authorization = fc.oneof(
      fc.constant(undefined),
      fc.stringMatching(/^[ -~]{0,80}$/),
      ascii.map((s) => `Bearer ${s.replace(/[^ -~]/g, '')}`),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ROUTES),
        fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD'),
        userId,
        authorization,
        async ([, template], method, user, auth) => {
          const headers: Record<string, string> = { 'x-user-id': user };
          if (auth !== undefined) headers.authorization = auth;
          if (method === 'HEAD') {
            const answer = await send(server.url, agent, method, fill(template, realIds[0]!), headers);
            expect(answer.status).toBeLessThan(500);
            return;
          }
          await check(method, fill(template, realIds[0]!), headers);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('still answers, and the real conversations are intact', async () => {
    const health = await send(server.url, agent, 'GET', '/healthz', {});
    expect(health.status).toBe(200);
    const ready = await send(server.url, agent, 'GET', '/readyz', {});
    expect(ready.status).toBe(200);
    for (const id of realIds) {
      const got = await send(server.url, agent, 'GET', `/v1/conversations/${id}`, { 'x-user-id': 'fuzzer' });
      // A fuzzed DELETE may have removed it: gone is fine, broken is not.
      expect([200, 404]).toContain(got.status);
    }
    if (process.env.FUZZ_VERBOSE) console.log(backend, Object.fromEntries(seen));
    // The fuzz reached past validation into the store, not only the 400 path.
    expect([...seen.keys()].some((s) => s >= 200 && s < 300)).toBe(true);
    expect([...seen.keys()].some((s) => s === 400)).toBe(true);
  });
});
