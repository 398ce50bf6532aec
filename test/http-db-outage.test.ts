import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { call, serverOnOwnPostgres } from './helpers/http.ts';

/**
 * PostgreSQL stopped under a running service: requests get 503 with
 * Retry-After (never a hang or a 500), probes tell the truth, the process
 * stays up; started again, the same service — never restarted — answers
 * normally with the data from before the outage.
 *
 * This file runs its own throwaway server on a fixed port (the shared test
 * server must not be stopped), persistent so a stop/start keeps the data.
 */

describe('HTTP service across a PostgreSQL outage', () => {
  const suite = serverOnOwnPostgres('pgferry-outage');

  it('answers 503 with Retry-After while the database is down, and recovers by itself', async () => {
    const created = await call(suite.server.url, 'POST', '/v1/conversations', { user: 'olivia', body: { title: 'before the outage' } });
    expect(created.status).toBe(201);
    const id: string = created.body.id;
    expect(
      (await call(suite.server.url, 'POST', `/v1/conversations/${id}/messages`, { user: 'olivia', body: { content: 'one' } })).status,
    ).toBe(201);
    expect((await call(suite.server.url, 'GET', '/readyz')).status).toBe(200);

    await suite.stopDatabase();

    const requests: Array<[string, string, unknown]> = [
      ['GET', '/v1/conversations', undefined],
      ['GET', `/v1/conversations/${id}`, undefined],
      ['POST', '/v1/conversations', { title: 'during' }],
      ['POST', `/v1/conversations/${id}/messages`, { content: 'lost?' }],
      ['GET', '/v1/usage', undefined],
    ];
    for (const [method, url, body] of requests) {
      const started = Date.now();
      const answer = await call(suite.server.url, method, url, { user: 'olivia', body });
      expect(answer.status, `${method} ${url}`).toBe(503);
      expect(answer.body.error.code).toBe('UNAVAILABLE');
      expect(Number(answer.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(answer.text).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|postgres:\/\//);
      // Bounded: the retries give up within seconds rather than holding the request.
      expect(Date.now() - started).toBeLessThan(15_000);
    }
    const ready = await call(suite.server.url, 'GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ status: 'unavailable', backend: 'postgres' });
    expect(ready.headers.get('retry-after')).toBeTruthy();
    expect((await call(suite.server.url, 'GET', '/healthz')).status).toBe(200);

    await suite.startDatabase();

    // The same app and store, never restarted: poll until the pool reconnects.
    // postgres.js waits out a reconnect backoff (up to 20 s) after many failed attempts.
    const deadline = Date.now() + 45_000;
    let list = await call(suite.server.url, 'GET', '/v1/conversations', { user: 'olivia' });
    while (list.status !== 200 && Date.now() < deadline) {
      await sleep(250);
      list = await call(suite.server.url, 'GET', '/v1/conversations', { user: 'olivia' });
    }
    expect(list.status).toBe(200);
    expect(list.body.items.map((c: { title: string }) => c.title)).toEqual(['before the outage']);
    expect((await call(suite.server.url, 'GET', '/readyz')).status).toBe(200);

    // Nothing from the failed requests was written; new writes work.
    const conversation = await call(suite.server.url, 'GET', `/v1/conversations/${id}`, { user: 'olivia' });
    expect(conversation.body.messages.map((m: { content: string }) => m.content)).toEqual(['one']);
    const after = await call(suite.server.url, 'POST', `/v1/conversations/${id}/messages`, { user: 'olivia', body: { content: 'two' } });
    expect(after.status).toBe(201);
    expect(after.body.usage.daily.used).toBe(2);
  }, 120_000);
});
