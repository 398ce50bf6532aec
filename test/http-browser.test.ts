import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Config, parseCorsOrigins } from '../src/config.ts';
import { type App, buildApp } from '../src/http/app.ts';
import type { Store } from '../src/store/types.ts';
import { createStorage, isErrorBody, type StorageFixture, testConfig } from './helpers/http.ts';

/**
 * What browsers (and the app's frontend) send: `content-type:
 * application/json` on requests without a body, and cross-origin calls with
 * CORS preflights (CORS_ORIGINS).
 */

let storage: StorageFixture;
let store: Store;
const apps: App[] = [];

beforeAll(async () => {
  storage = await createStorage('json');
  store = await storage.open();
});
afterAll(async () => {
  for (const app of apps) await app.close();
  await store?.close();
  await storage?.cleanup();
});

async function appWith(env: Record<string, string> = {}): Promise<App> {
  const app = await buildApp({ store, config: testConfig({ DATA_DIR: storage.dataDir, ...env }) });
  apps.push(app);
  return app;
}

interface Operation {
  method: string;
  path: string;
}

/** Every write route whose body is optional (no body schema, or one with no required field), from the OpenAPI document. */
function routesWithoutRequiredBody(app: App): Operation[] {
  type Op = { requestBody?: { content?: Record<string, { schema?: { required?: string[] } }> } };
  const paths = (app.swagger() as { paths: Record<string, Record<string, Op>> }).paths;
  const found: Operation[] = [];
  for (const [path, operations] of Object.entries(paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      if (!['post', 'put', 'patch', 'delete'].includes(method)) continue;
      const required = operation.requestBody?.content?.['application/json']?.schema?.required ?? [];
      if (required.length === 0) found.push({ method: method.toUpperCase(), path });
    }
  }
  return found;
}

describe('an empty body sent as application/json', () => {
  it('is no body on every POST/DELETE route that needs none', async () => {
    const app = await appWith();
    await app.ready();
    const routes = routesWithoutRequiredBody(app);
    // The list comes from the routes themselves; this pins what it covers today.
    expect(routes.map((r) => `${r.method} ${r.path}`).sort()).toEqual([
      'DELETE /v1/conversations/{id}',
      'DELETE /v1/submissions/{id}',
      'DELETE /v1/uploads/{id}',
      'POST /v1/conversations',
      'POST /v1/jobs/{id}/start',
      'POST /v1/submissions/{id}/jobs',
      'POST /v1/uploads',
      'POST /v1/uploads/{id}/complete',
    ]);
    for (const contentType of ['application/json', 'application/json; charset=utf-8']) {
      // Upload routes take multipart or an upload id (test/http-uploads.test.ts); the forms routes need a
      // submission and, for job transitions, a worker scope (test/http-forms.test.ts).
      for (const route of routes.filter((r) => r.path.startsWith('/v1/conversations'))) {
        const created = await app.inject({ method: 'POST', url: '/v1/conversations', headers: { 'x-user-id': 'browser' }, payload: {} });
        const url = route.path.replace('{id}', created.json().id);
        const answer = await app.inject({
          method: route.method as 'POST',
          url,
          headers: { 'x-user-id': 'browser', 'content-type': contentType },
          payload: '',
        });
        expect(answer.statusCode, `${route.method} ${url} (${contentType}): ${answer.body}`).toBeLessThan(300);
      }
      // A submission's job (no meta needed) and its delete, on a submission of the caller's.
      const headers = { 'x-user-id': 'browser', 'content-type': contentType };
      const submission = await app.inject({
        method: 'POST',
        url: '/v1/submissions',
        headers: { 'x-user-id': 'browser' },
        payload: { module: 'civil', formData: { fields: { project_name: 'Empty body' } } },
      });
      expect(submission.statusCode, submission.body).toBe(201);
      const job = await app.inject({ method: 'POST', url: `/v1/submissions/${submission.json().id}/jobs`, headers, payload: '' });
      expect(job.statusCode, `POST …/jobs (${contentType}): ${job.body}`).toBeLessThan(300);
      const removed = await app.inject({ method: 'DELETE', url: `/v1/submissions/${submission.json().id}`, headers, payload: '' });
      expect(removed.statusCode, `DELETE /v1/submissions/{id} (${contentType}): ${removed.body}`).toBeLessThan(300);
    }
  });

  it('still leaves a route that needs a body answering 400, and invalid JSON stays 400 with the error body', async () => {
    const app = await appWith();
    const created = await app.inject({ method: 'POST', url: '/v1/conversations', headers: { 'x-user-id': 'browser' }, payload: {} });
    const json = { 'x-user-id': 'browser', 'content-type': 'application/json' };
    const cases = [
      { method: 'POST', url: `/v1/conversations/${created.json().id}/messages`, payload: '' },
      { method: 'PATCH', url: `/v1/conversations/${created.json().id}`, payload: '' },
      { method: 'POST', url: '/v1/conversations', payload: '{"title": ' },
      { method: 'POST', url: '/v1/conversations', payload: ' ' },
      { method: 'DELETE', url: `/v1/conversations/${created.json().id}`, payload: '{' },
    ] as const;
    for (const { method, url, payload } of cases) {
      const answer = await app.inject({ method, url, headers: json, payload });
      expect(answer.statusCode, `${method} ${url} ${JSON.stringify(payload)}`).toBe(400);
      expect(isErrorBody(answer.json())).toBe(true);
      expect(answer.json().error.code).toBe('INVALID_INPUT');
    }
  });
});

describe('CORS (CORS_ORIGINS)', () => {
  const preflight = (app: App, origin: string) =>
    app.inject({
      method: 'OPTIONS',
      url: '/v1/conversations',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,authorization' },
    });

  it('is off by default: no CORS headers, even for a preflight', async () => {
    const app = await appWith();
    const answer = await preflight(app, 'https://app.example.com');
    expect(answer.headers['access-control-allow-origin']).toBeUndefined();
    expect(answer.headers['access-control-allow-methods']).toBeUndefined();
    const get = await app.inject({ method: 'GET', url: '/healthz', headers: { origin: 'https://app.example.com' } });
    expect(get.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('answers a preflight from an allowed origin, and not from another one', async () => {
    const app = await appWith({ CORS_ORIGINS: 'https://app.example.com, http://localhost:5173' });
    const allowed = await preflight(app, 'http://localhost:5173');
    expect(allowed.statusCode).toBe(204);
    expect(allowed.headers['access-control-allow-origin']).toBe('http://localhost:5173');
    expect(String(allowed.headers['access-control-allow-methods'])).toMatch(/POST/);
    expect(String(allowed.headers['access-control-allow-headers'])).toMatch(/authorization/);
    expect(allowed.headers['access-control-allow-credentials']).toBeUndefined();

    const other = await preflight(app, 'https://evil.example.net');
    expect(other.headers['access-control-allow-origin']).toBeUndefined();

    // The answer itself (an error too) carries the header, so the page can read it.
    const unauthorised = await app.inject({ method: 'GET', url: '/v1/usage', headers: { origin: 'https://app.example.com' } });
    expect(unauthorised.statusCode).toBe(401);
    expect(unauthorised.headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect(String(unauthorised.headers['access-control-expose-headers'])).toMatch(/x-request-id/);
  });

  it('allows any origin with *', async () => {
    const app = await appWith({ CORS_ORIGINS: '*' });
    const answer = await preflight(app, 'https://anywhere.example.org');
    expect(answer.headers['access-control-allow-origin']).toBe('*');
  });

  it('parses CORS_ORIGINS and names the variable when it is wrong', () => {
    expect(parseCorsOrigins(undefined)).toEqual([]);
    expect(parseCorsOrigins('')).toEqual([]);
    expect(parseCorsOrigins(' * ')).toBe('*');
    expect(parseCorsOrigins('https://App.Example.com/,https://app.example.com:443,http://localhost:5173')).toEqual([
      'https://app.example.com',
      'http://localhost:5173',
    ]);
    for (const bad of ['app.example.com', 'https://app.example.com/path', 'ftp://files.example.com', '*,https://a.example.com']) {
      expect(() => testConfig({ CORS_ORIGINS: bad }), bad).toThrow(/^CORS_ORIGINS: expected "\*" or comma-separated origins/);
    }
    const config: Config = testConfig({ CORS_ORIGINS: 'https://a.example.com' });
    expect(config.http.corsOrigins).toEqual(['https://a.example.com']);
  });
});
