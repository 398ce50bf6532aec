import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedServer, freePort, startEmbeddedPostgres } from '../src/db/embedded.ts';
import { createLogger } from '../src/log.ts';
import { openStore } from '../src/store/open.ts';
import type { Store } from '../src/store/types.ts';
import { call, startServer, type TestServer, testConfig } from './helpers/http.ts';

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
  let dir: string;
  let clusterDir: string;
  let port: number;
  let pg: EmbeddedServer | undefined;
  let store: Store;
  let server: TestServer;

  const startPg = async () => {
    pg = await startEmbeddedPostgres({ clusterDir, port, persistent: true });
    return pg;
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-outage-'));
    // When tests run as root, PostgreSQL runs as the `postgres` user and must traverse this directory.
    await chmod(dir, 0o755);
    clusterDir = path.join(dir, 'cluster');
    port = await freePort();
    const { url } = await startPg();
    store = await openStore({
      env: {
        DATABASE_URL: url,
        DATA_DIR: dir,
        ON_DB_UNAVAILABLE: 'fail',
        // Fail fast while the server is down: the service answers 503 instead of queueing requests.
        DB_CONNECT_TIMEOUT_S: '2',
      },
      logger: createLogger({ level: 'silent' }),
    });
    server = await startServer({ store, config: testConfig() });
  }, 180_000);

  afterAll(async () => {
    await server?.close();
    await store?.close();
    await pg?.stop();
    await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it('answers 503 with Retry-After while the database is down, and recovers by itself', async () => {
    const created = await call(server.url, 'POST', '/v1/conversations', { user: 'olivia', body: { title: 'before the outage' } });
    expect(created.status).toBe(201);
    const id: string = created.body.id;
    expect((await call(server.url, 'POST', `/v1/conversations/${id}/messages`, { user: 'olivia', body: { content: 'one' } })).status).toBe(
      201,
    );
    expect((await call(server.url, 'GET', '/readyz')).status).toBe(200);

    await pg!.stop();

    const requests: Array<[string, string, unknown]> = [
      ['GET', '/v1/conversations', undefined],
      ['GET', `/v1/conversations/${id}`, undefined],
      ['POST', '/v1/conversations', { title: 'during' }],
      ['POST', `/v1/conversations/${id}/messages`, { content: 'lost?' }],
      ['GET', '/v1/usage', undefined],
    ];
    for (const [method, url, body] of requests) {
      const started = Date.now();
      const answer = await call(server.url, method, url, { user: 'olivia', body });
      expect(answer.status, `${method} ${url}`).toBe(503);
      expect(answer.body.error.code).toBe('UNAVAILABLE');
      expect(Number(answer.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(answer.text).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|postgres:\/\//);
      // Bounded: the retries give up within seconds rather than holding the request.
      expect(Date.now() - started).toBeLessThan(15_000);
    }
    const ready = await call(server.url, 'GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ status: 'unavailable', backend: 'postgres' });
    expect(ready.headers.get('retry-after')).toBeTruthy();
    expect((await call(server.url, 'GET', '/healthz')).status).toBe(200);

    await startPg();

    // The same app and store, never restarted: poll until the pool reconnects.
    // postgres.js waits out a reconnect backoff (up to 20 s) after many failed attempts.
    const deadline = Date.now() + 45_000;
    let list = await call(server.url, 'GET', '/v1/conversations', { user: 'olivia' });
    while (list.status !== 200 && Date.now() < deadline) {
      await sleep(250);
      list = await call(server.url, 'GET', '/v1/conversations', { user: 'olivia' });
    }
    expect(list.status).toBe(200);
    expect(list.body.items.map((c: { title: string }) => c.title)).toEqual(['before the outage']);
    expect((await call(server.url, 'GET', '/readyz')).status).toBe(200);

    // Nothing from the failed requests was written; new writes work.
    const conversation = await call(server.url, 'GET', `/v1/conversations/${id}`, { user: 'olivia' });
    expect(conversation.body.messages.map((m: { content: string }) => m.content)).toEqual(['one']);
    const after = await call(server.url, 'POST', `/v1/conversations/${id}/messages`, { user: 'olivia', body: { content: 'two' } });
    expect(after.status).toBe(201);
    expect(after.body.usage.daily.used).toBe(2);
  }, 120_000);
});
