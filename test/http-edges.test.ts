import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { MALFORMED_LIST_CURSORS, MALFORMED_MESSAGES_CURSORS } from './contract/store-contract.ts';
import { BACKENDS, call, isErrorBody, serverForSuite, startServer, testConfig } from './helpers/http.ts';

/**
 * Issue 9, the small HTTP findings: invalid UTF-8 in a body is a 400 (not
 * stored as U+FFFD); every 4xx — also the ones Node's HTTP parser answers
 * before a route runs (bad request line 400, headers too large 431) — has
 * the documented `{error: {code, message, requestId}}` body; malformed
 * cursors are the same 400 on both backends, without SQL text.
 */

/** One raw request over TCP; resolves with everything the server wrote before closing. */
function rawRequest(url: string, bytes: Buffer | string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: hostname, port: Number(port) });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer')));
    socket.end(bytes);
  });
}

/** Status line and parsed JSON body of a raw HTTP/1.1 answer. */
function parseAnswer(raw: string): { status: number; headers: string; body: unknown } {
  const split = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, split);
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  let body: unknown;
  try {
    body = JSON.parse(raw.slice(split + 4));
  } catch {
    body = undefined;
  }
  return { status, headers: head, body };
}

describe.each(BACKENDS)('HTTP edges on %s', (backend) => {
  const suite = serverForSuite(backend, (store, _storage) => startServer({ store, config: testConfig({ AUTH_MODE: 'dev' }) }));

  it('refuses a body that is not valid UTF-8 with 400 and stores nothing', async () => {
    const user = `utf8-${backend}`;
    const created = await call(suite.server.url, 'POST', '/v1/conversations', { user, body: { title: 't' } });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    for (const bad of [
      Buffer.from([0x7b, 0x22, 0x63, 0x6f, 0x6e, 0x74, 0x65, 0x6e, 0x74, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), // {"content":"\xff\xfe"}
      Buffer.concat([Buffer.from('{"content":"a'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]), // CESU surrogate
      Buffer.concat([Buffer.from('{"content":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]), // overlong '/'
      Buffer.concat([Buffer.from('{"content":"cut '), Buffer.from([0xe2, 0x82])]), // truncated sequence
    ]) {
      const response = await fetch(`${suite.server.url}/v1/conversations/${id}/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-user-id': user },
        body: bad,
      });
      const body = (await response.json()) as { error: unknown };
      expect(response.status).toBe(400);
      expect(isErrorBody(body)).toBe(true);
      expect(body.error).toMatchObject({ code: 'INVALID_INPUT', message: expect.stringContaining('UTF-8') });
    }
    const got = await call(suite.server.url, 'GET', `/v1/conversations/${id}`, { user });
    expect(got.body.messageCount).toBe(0);
    // Valid multi-byte UTF-8 and an empty application/json body still work.
    const ok = await call(suite.server.url, 'POST', `/v1/conversations/${id}/messages`, { user, body: { content: 'ünï 🚀' } });
    expect(ok.status).toBe(201);
    expect(ok.body.message.content).toBe('ünï 🚀');
    const empty = await fetch(`${suite.server.url}/v1/conversations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-user-id': user },
    });
    expect(empty.status).toBe(201);
  });

  it('serves `__proto__` and `constructor` keys of stored stage data as ordinary keys', async () => {
    const user = `proto-${backend}`;
    const { id } = await suite.store.conversations.create(user);
    const stage3 = JSON.parse('{"model":"m","response":"r","__proto__":{"polluted":true},"constructor":{"x":1}}');
    await suite.store.conversations.addAssistantMessage(user, id, { stage1: [], stage2: [], stage3 });
    const answer = await call(suite.server.url, 'GET', `/v1/conversations/${id}`, { user });
    expect(answer.status).toBe(200);
    expect(answer.text).toContain('"__proto__":{"polluted":true}');
    expect(answer.text).toContain('"constructor":{"x":1}');
  });

  it('a malformed JSON body is a 400 that names the place, not the text', async () => {
    const marker = 'SECRET-MARKER-4711';
    const answer = await call(suite.server.url, 'POST', '/v1/conversations', { user: 'json-bad', body: `{"title": ${marker}}` });
    expect(answer.status).toBe(400);
    expect(isErrorBody(answer.body)).toBe(true);
    expect(answer.body.error.message).toMatch(/not valid JSON.*line 1, column 11/);
    expect(answer.text).not.toContain(marker);
  });

  it('answers requests Node cannot parse with the documented error body (400, 431)', async () => {
    const cases: Array<[string, Buffer | string, number, string]> = [
      ['garbage request line', 'THIS IS NOT HTTP\r\n\r\n', 400, 'INVALID_INPUT'],
      ['bad method token', 'G(T / HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'INVALID_INPUT'],
      ['header without colon', 'GET /healthz HTTP/1.1\r\nHost: x\r\nbroken header\r\n\r\n', 400, 'INVALID_INPUT'],
      ['bad content-length', 'POST /v1/conversations HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n', 400, 'INVALID_INPUT'],
      ['headers too large', `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'HEADERS_TOO_LARGE'],
    ];
    for (const [name, bytes, status, code] of cases) {
      const answer = parseAnswer(await rawRequest(suite.server.url, bytes));
      expect(answer.status, name).toBe(status);
      expect(answer.headers, name).toMatch(/content-type: application\/json/i);
      expect(isErrorBody(answer.body), name).toBe(true);
      expect((answer.body as { error: { code: string } }).error.code, name).toBe(code);
    }
  });

  it('answers a malformed cursor with the same 400 on every backend, without SQL text', async () => {
    const user = `cursor-${backend}`;
    const { body } = await call(suite.server.url, 'POST', '/v1/conversations', { user, body: { title: 'c' } });
    const bodies: unknown[] = [];
    for (const cursor of MALFORMED_LIST_CURSORS.filter((c) => c !== '')) {
      const answer = await call(suite.server.url, 'GET', `/v1/conversations?cursor=${encodeURIComponent(cursor)}`, { user });
      expect(answer.status, cursor).toBe(400);
      expect(answer.text, cursor).not.toMatch(/select|syntax|postgres|timestamp|invalid input syntax/i);
      bodies.push({ ...answer.body.error, requestId: undefined });
    }
    for (const cursor of MALFORMED_MESSAGES_CURSORS) {
      const answer = await call(suite.server.url, 'GET', `/v1/conversations/${body.id}?messagesCursor=${encodeURIComponent(cursor)}`, {
        user,
      });
      expect(answer.status, cursor).toBe(400);
      expect(answer.text, cursor).not.toMatch(/select|syntax|postgres|invalid input syntax/i);
      expect(answer.body.error.code).toBe('INVALID_INPUT');
    }
    // One answer for every malformed list cursor: nothing tells the shapes apart.
    expect(new Set(bodies.map((b) => JSON.stringify(b))).size).toBe(1);
    expect(bodies[0]).toMatchObject({ code: 'INVALID_INPUT', message: 'invalid cursor: pass back the value exactly as returned' });
  });
});
