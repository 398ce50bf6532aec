import { describe, expect, it } from 'vitest';
import { call, isErrorBody, serverForSuite, startServer, testConfig } from './helpers/http.ts';

/**
 * Seed 002's REST routes on both backends and in hybrid mode (jobs on JSON):
 * a user sees only their submissions (and their files and jobs); the app's
 * submissions without a user are for admins only; the polling route gives
 * state, progress and results; workers move jobs; illegal moves are 409;
 * the audit log is for admins; the OpenAPI document lists every route.
 */

const ADMIN = { 'x-user-role': 'admin' };
const WORKER = { 'x-user-scopes': 'jobs:write' };
const civil = { module: 'civil', formData: { fields: { project_name: 'Mussafah Warehouse 7', date: '2025-12-22' }, files: [] } };
const hvac = { module: 'hvac_mep', formData: { site_name: 'ADNOC HQ L14', visit_date: '2025-12-20', items: [] } };

const SUITES: Array<[string, 'json' | 'postgres', Record<string, string>]> = [
  ['json', 'json', {}],
  ['postgres', 'postgres', {}],
  ['hybrid (STORAGE_JOBS=json)', 'postgres', { STORAGE_JOBS: 'json' }],
];

describe.each(SUITES)('forms routes on %s', (_name, backend, env) => {
  const suite = serverForSuite(backend, async (_store, storage) => {
    const store = await storage.open(env);
    return startServer({ store, config: testConfig({ DATA_DIR: storage.dataDir }), ownsStore: true });
  });
  const url = () => suite.server.url;

  it('creates, lists with filters, gets, updates and deletes a submission', async () => {
    const created = await call(url(), 'POST', '/v1/submissions', { user: 'alice', body: civil });
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe(`/v1/submissions/${created.body.id}`);
    expect(created.body).toMatchObject({ userId: 'alice', module: 'civil', status: 'pending', siteName: 'Mussafah Warehouse 7' });
    await call(url(), 'POST', '/v1/submissions', { user: 'alice', body: hvac });
    const page = await call(url(), 'GET', '/v1/submissions?module=civil&visitDateFrom=2025-12-01&limit=1', { user: 'alice' });
    expect(page.status).toBe(200);
    expect(page.body.items.map((s: { id: string }) => s.id)).toEqual([created.body.id]);
    const all = await call(url(), 'GET', '/v1/submissions?limit=1', { user: 'alice' });
    const next = await call(url(), 'GET', `/v1/submissions?limit=1&cursor=${all.body.nextCursor}`, { user: 'alice' });
    expect(next.body.items[0].id).toBe(created.body.id);
    const patched = await call(url(), 'PATCH', `/v1/submissions/${created.body.id}`, { user: 'alice', body: { status: 'completed' } });
    expect(patched.body.status).toBe('completed');
    expect((await call(url(), 'GET', `/v1/submissions/${created.body.id}`, { user: 'alice' })).body.status).toBe('completed');
    expect((await call(url(), 'DELETE', `/v1/submissions/${created.body.id}`, { user: 'alice' })).status).toBe(204);
    expect((await call(url(), 'GET', `/v1/submissions/${created.body.id}`, { user: 'alice' })).status).toBe(404);
  });

  it('isolates users on every submission route; a submission without a user is for admins only', async () => {
    const mine = (await call(url(), 'POST', '/v1/submissions', { user: 'carol', body: hvac })).body;
    const job = (await call(url(), 'POST', `/v1/submissions/${mine.id}/jobs`, { user: 'carol' })).body;
    for (const [method, path, body] of [
      ['GET', `/v1/submissions/${mine.id}`],
      ['PATCH', `/v1/submissions/${mine.id}`, { status: 'failed' }],
      ['DELETE', `/v1/submissions/${mine.id}`],
      ['GET', `/v1/submissions/${mine.id}/files`],
      ['POST', `/v1/submissions/${mine.id}/files`, { url: 'https://x/p.jpg' }],
      ['GET', `/v1/submissions/${mine.id}/jobs`],
      ['POST', `/v1/submissions/${mine.id}/jobs`, {}],
      ['GET', `/v1/jobs/${job.id}`],
    ] as const) {
      const answer = await call(url(), method, path, { user: 'dave', ...(body ? { body } : {}) });
      expect(answer.status, `${method} ${path}`).toBe(404);
      expect(isErrorBody(answer.body)).toBe(true);
    }
    const listed = await call(url(), 'GET', '/v1/submissions', { user: 'dave' });
    expect(listed.body.items.map((s: { id: string }) => s.id)).not.toContain(mine.id);
    expect((await call(url(), 'GET', `/v1/submissions/${mine.id}`, { user: 'root', headers: ADMIN })).status).toBe(200);

    const orphan = await call(url(), 'POST', '/v1/submissions', { user: 'root', headers: ADMIN, body: { ...civil, userId: null } });
    expect(orphan.body.userId).toBeNull();
    expect((await call(url(), 'GET', `/v1/submissions/${orphan.body.id}`, { user: 'carol' })).status).toBe(404);
    expect((await call(url(), 'GET', `/v1/submissions/${orphan.body.id}`, { user: 'root', headers: ADMIN })).status).toBe(200);
    const forged = await call(url(), 'POST', '/v1/submissions', { user: 'carol', body: { ...civil, userId: 'dave' } });
    expect(forged.status).toBe(403);
    const minted = await call(url(), 'POST', '/v1/submissions', { user: 'carol', body: { ...civil, id: 'sub_000000000000' } });
    expect(minted.status).toBe(400);
  });

  it('polls a job and lets a worker move it; illegal moves are 409, a plain user 403', async () => {
    const s = (await call(url(), 'POST', '/v1/submissions', { user: 'erin', body: hvac })).body;
    const created = await call(url(), 'POST', `/v1/submissions/${s.id}/jobs`, { user: 'erin', body: { meta: { site_name: 'ADNOC' } } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ state: 'started', progress: 0, meta: { submission_id: s.id, module: 'hvac_mep' } });
    const jobUrl = `/v1/jobs/${created.body.id}`;
    expect((await call(url(), 'POST', `${jobUrl}/start`, { user: 'erin' })).status).toBe(403);
    expect((await call(url(), 'POST', `${jobUrl}/start`, { user: 'w1', headers: WORKER })).body.state).toBe('running');
    expect((await call(url(), 'POST', `${jobUrl}/start`, { user: 'w1', headers: WORKER })).status).toBe(409);
    expect((await call(url(), 'POST', `${jobUrl}/progress`, { user: 'w1', headers: WORKER, body: { progress: 70 } })).status).toBe(200);
    const back = await call(url(), 'POST', `${jobUrl}/progress`, { user: 'w1', headers: WORKER, body: { progress: 20 } });
    expect(back.status).toBe(409);
    expect(back.body.error.code).toBe('CONFLICT');
    const results = { excel_url: 'https://x/r.xlsx', pdf_url: 'https://x/r.pdf' };
    const done = await call(url(), 'POST', `${jobUrl}/finish`, { user: 'w1', headers: WORKER, body: { results } });
    expect(done.body).toMatchObject({ state: 'done', progress: 100, results });
    const polled = await call(url(), 'GET', jobUrl, { user: 'erin' });
    expect(polled.body).toMatchObject({ state: 'done', progress: 100, results, error: null });
    expect((await call(url(), 'POST', `${jobUrl}/fail`, { user: 'root', headers: ADMIN, body: { error: 'late' } })).status).toBe(409);
    const jobs = await call(url(), 'GET', `/v1/submissions/${s.id}/jobs`, { user: 'erin' });
    expect(jobs.body.items.map((j: { id: string }) => j.id)).toEqual([created.body.id]);
  });

  it('records files and shows the audit log to admins only', async () => {
    const s = (await call(url(), 'POST', '/v1/submissions', { user: 'frank', body: hvac, headers: { 'user-agent': 'form.js/1' } })).body;
    const file = await call(url(), 'POST', `/v1/submissions/${s.id}/files`, {
      user: 'frank',
      body: { url: 'https://res.cloudinary.com/injaaz/image/upload/v1/p.jpg', fileType: 'photo', isCloud: true },
    });
    expect(file.status).toBe(201);
    const files = await call(url(), 'GET', `/v1/submissions/${s.id}/files`, { user: 'frank' });
    expect(files.body.items.map((f: { url: string }) => f.url)).toContain(file.body.url);
    expect((await call(url(), 'GET', '/v1/audit', { user: 'frank' })).status).toBe(403);
    const audit = await call(url(), 'GET', `/v1/audit?resourceId=${s.id}`, { user: 'root', headers: ADMIN });
    expect(audit.status).toBe(200);
    expect(audit.body.items.map((e: { action: string }) => e.action)).toEqual(['file.add', 'submission.create']);
    expect(audit.body.items[1]).toMatchObject({ userId: 'frank', userAgent: 'form.js/1', ip: expect.any(String) });
  });

  it('documents every forms route in OpenAPI', async () => {
    const doc = (await call(url(), 'GET', '/docs/json')).body;
    for (const path of [
      '/v1/submissions',
      '/v1/submissions/{id}',
      '/v1/submissions/{id}/files',
      '/v1/submissions/{id}/jobs',
      '/v1/jobs/{id}',
      '/v1/jobs/{id}/finish',
      '/v1/audit',
    ]) {
      expect(doc.paths[path], path).toBeDefined();
    }
    expect(doc.components.schemas.Job).toBeDefined();
  });
});
