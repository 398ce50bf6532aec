import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BACKENDS, call, serverForSuite } from './helpers/http.ts';

/**
 * Ids reveal nothing (docs/decisions.md, "Ids"): the REST API mints every
 * conversation id, so creating with another user's id gets exactly the
 * answer of any other client-chosen id — never "already exists".
 */
describe.each(BACKENDS)('client-chosen ids on %s', (backend) => {
  const suite = serverForSuite(backend);

  /** The answer without the per-request id: what alice can compare. */
  const shape = (answer: Awaited<ReturnType<typeof call>>) => {
    const { requestId: _requestId, ...error } = answer.body.error;
    return { status: answer.status, error, keys: Object.keys(answer.body) };
  };

  it("alice creating with bob's id gets the same answer as with an id nobody has, and bob's data is untouched", async () => {
    const bobs = await call(suite.server.url, 'POST', '/v1/conversations', { user: 'bob', body: { title: 'bob only' } });
    const alices = await call(suite.server.url, 'POST', '/v1/conversations', { user: 'alice', body: { title: 'mine' } });
    const create = (id: string) => call(suite.server.url, 'POST', '/v1/conversations', { user: 'alice', body: { id, title: 'squat' } });

    const withBobsId = await create(bobs.body.id);
    const withFreshId = await create(randomUUID());
    const withOwnId = await create(alices.body.id);
    expect(withBobsId.status).toBe(400);
    expect(shape(withBobsId)).toEqual(shape(withFreshId));
    expect(shape(withBobsId)).toEqual(shape(withOwnId));
    expect(withBobsId.text).not.toMatch(/exists|taken|bob/i);

    // With an Idempotency-Key too: the refusal is the same and records nothing.
    const keyed = await call(suite.server.url, 'POST', '/v1/conversations', {
      user: 'alice',
      body: { id: bobs.body.id },
      headers: { 'idempotency-key': 'squat-1' },
    });
    expect(shape(keyed)).toEqual(shape(withFreshId));

    const bob = await call(suite.server.url, 'GET', `/v1/conversations/${bobs.body.id}`, { user: 'bob' });
    expect(bob.body).toMatchObject({ title: 'bob only', messageCount: 0 });
    const list = await call(suite.server.url, 'GET', '/v1/conversations', { user: 'alice' });
    expect(list.body.items.map((c: { title: string }) => c.title)).toEqual(['mine']);
  });

  it('the server mints a fresh UUID for every created conversation', async () => {
    const a = await call(suite.server.url, 'POST', '/v1/conversations', { user: 'carol' });
    const b = await call(suite.server.url, 'POST', '/v1/conversations', { user: 'carol', body: {} });
    expect(a.body.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(b.body.id).not.toBe(a.body.id);
  });
});
