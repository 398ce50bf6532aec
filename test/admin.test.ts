import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRun } from '../src/runs/record.ts';
import { Journal } from '../src/store/modes/journal.ts';
import type { Store } from '../src/store/types.ts';
import { call, createStorage, type StorageFixture, startServer, type TestServer, testConfig } from './helpers/http.ts';

/**
 * The admin page and /metrics over HTTP (issue 13): who may see them, what
 * they show, and that no secret ever appears in them. The browser side
 * (refresh, charts, console) is test/admin-browser.test.ts.
 */

const SECRET = 'admin-test-secret-long-enough-for-hs256!';
const METRICS_TOKEN = 'metrics-token-0123456789abcdef';
const enc = new TextEncoder();

const token = (sub: string, role?: string) =>
  new SignJWT(role ? { role } : {}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime('1h').sign(enc.encode(SECRET));

let storage: StorageFixture;
let store: Store;
let server: TestServer;
let adminToken: string;
let userToken: string;

beforeAll(async () => {
  storage = await createStorage('postgres');
  store = await storage.open({ SLOW_QUERY_MS: '0' });
  const config = testConfig({
    AUTH_MODE: 'jwt',
    AUTH_JWT_SECRET: SECRET,
    METRICS_TOKEN,
    DATA_DIR: storage.dataDir,
    DATABASE_URL: storage.databaseUrl!,
    SLOW_QUERY_MS: '0',
  });
  server = await startServer({ store, config });
  adminToken = await token('root_admin', 'admin');
  userToken = await token('plain_user');
});

afterAll(async () => {
  await server?.close();
  await store?.close();
  await storage?.cleanup();
});

const ADMIN_ROUTES = [
  '/admin',
  '/admin/sections',
  '/admin/runs/1',
  '/admin/api/overview',
  '/admin/api/runs',
  '/admin/api/runs/1',
  '/metrics',
];

describe('admin access', () => {
  it('refuses every admin route to a non-admin token (403) and asks for credentials without one (401)', async () => {
    for (const route of ADMIN_ROUTES) {
      expect((await call(server.url, 'GET', route, { token: userToken })).status, route).toBe(403);
      expect((await call(server.url, 'GET', route, { token: 'not.a.token' })).status, route).toBe(401);
    }
    for (const route of ['/admin/sections', '/admin/api/overview', '/admin/api/runs', '/admin/api/runs/1', '/metrics']) {
      expect((await call(server.url, 'GET', route)).status, route).toBe(401);
    }
    // A browser without credentials is sent to the sign-in form.
    const first = await fetch(`${server.url}/admin`, { redirect: 'manual' });
    expect(first.status).toBe(303);
    expect(first.headers.get('location')).toBe('/admin/login');
    const page = await call(server.url, 'GET', '/admin/login');
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(page.text).toContain('<form method="post" action="/admin/login">');
    const badCookie = await call(server.url, 'GET', '/admin', { headers: { cookie: 'pgferry_admin=forged' } });
    expect(badCookie.status).toBe(401);
    expect(badCookie.text).toContain('sign-in refused');
  });

  it('the sign-in form sets an HttpOnly session cookie for an admin token only', async () => {
    const form = (value: string) =>
      fetch(`${server.url}/admin/login`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: value }).toString(),
      });
    expect((await form(userToken)).status).toBe(403);
    expect((await form('not-a-token')).status).toBe(401);
    const ok = await form(adminToken);
    expect(ok.status).toBe(303);
    const cookie = ok.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^pgferry_admin=[^;]+; Path=\/; HttpOnly; SameSite=Strict/);
    const page = await call(server.url, 'GET', '/admin', { headers: { cookie: cookie.split(';')[0]! } });
    expect(page.status).toBe(200);
    expect(page.text).toContain('root_admin (admin)');
    // The cookie is the page's alone: the /v1 API still wants a header.
    expect((await call(server.url, 'GET', '/v1/conversations', { headers: { cookie: cookie.split(';')[0]! } })).status).toBe(401);
  });
});

describe('admin page', () => {
  it('renders every section, with a strict CSP and a run a test started', async () => {
    const run = await startRun(store.database!, { command: 'import', source: '/data/app', reportPath: '/tmp/problems.jsonl' });
    run.progress(0, 10);
    await run.finish({
      exitCode: 1,
      counts: { conversations: { read: 10, inserted: 7, updated: 1, unchanged: 1, rejected: 1 } },
      problems: {
        errors: 1,
        warnings: 0,
        first: [{ kind: 'conversation', file: 'conversations/x.json', record: 'x', reason: 'not JSON', severity: 'error' }],
      },
    });
    const page = await call(server.url, 'GET', '/admin', { token: adminToken });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    for (const id of ['configuration', 'cutover', 'runs', 'file-moves', 'database', 'quotas'])
      expect(page.text).toContain(`<section id="${id}"`);
    expect(page.text).toContain(`data-run-id="${run.id}"`);
    expect(page.text).toContain(`<a href="/admin/runs/${run.id}">1 problems`);
    expect(page.text).not.toMatch(/<script>|style="/);

    const detail = await call(server.url, 'GET', `/admin/runs/${run.id}`, { token: adminToken });
    expect(detail.text).toContain('conversations/x.json');
    expect(detail.text).toContain('not JSON');
    const json = await call(server.url, 'GET', `/admin/api/runs/${run.id}`, { token: adminToken });
    expect(json.body.problems).toEqual([
      { kind: 'conversation', file: 'conversations/x.json', record: 'x', reason: 'not JSON', severity: 'error' },
    ]);
    expect((await call(server.url, 'GET', '/admin/api/runs/99999', { token: adminToken })).status).toBe(404);
    expect((await call(server.url, 'GET', '/admin/api/runs/abc', { token: adminToken })).status).toBe(400);
  });

  it('charts file moves, lists users at their limit, and reports the schema and the pool', async () => {
    const sql = store.database!.sql;
    await sql`insert into file_moves (table_name, record_id, source_store, target_store, size, status, migrated_at)
              select 'uploads', 'r' || i, 'local', 's3', 1000 * i, case when i % 5 = 0 then 'failed' else 'migrated' end,
                     now() - make_interval(mins => 60 - i)
                from generate_series(1, 40) i`;
    await sql`insert into usage (user_id, tier, daily_used, monthly_used) values ('heavy_user', 'free', 10, 10), ('light_user', 'free', 1, 1)`;
    const overview = await call(server.url, 'GET', '/admin/api/overview', { token: adminToken });
    const { sections } = overview.body;
    expect(sections['file-moves'].byStatus).toEqual([
      { status: 'failed', objects: 8, bytes: expect.any(Number) },
      { status: 'migrated', objects: 32, bytes: expect.any(Number) },
    ]);
    expect(sections['file-moves'].movedOverTime.objects.at(-1)[1]).toBe(32);
    expect(sections.quotas.users.map((u: { userId: string }) => u.userId)).toEqual(['heavy_user']);
    expect(sections.configuration.database.reachable).toBe(true);
    expect(sections.configuration.schema.pending).toEqual([]);
    expect(sections.database.pool.max).toBeGreaterThan(0);
    expect(sections.database.tables.map((t: { table: string }) => t.table)).toContain('conversations');
    // SLOW_QUERY_MS=0: every statement is "slow"; the text has placeholders, never the values.
    expect(sections.database.slowQueryCount).toBeGreaterThan(0);
    const texts = sections.database.slowest.map((q: { text?: string }) => q.text ?? '').join('\n');
    expect(texts).toMatch(/\$1/);
    expect(texts).not.toContain('heavy_user');
    const page = await call(server.url, 'GET', '/admin', { token: adminToken });
    expect(page.text).toContain('class="chart line-chart"');
    expect(page.text).toContain('heavy_user');
    expect(page.text).not.toContain('light_user');
  });

  it('shows no secret: not the database password, the JWT secret, the metrics token or the caller token', async () => {
    const password = new URL(storage.databaseUrl!).password;
    const overview = await call(server.url, 'GET', '/admin/api/overview', { token: adminToken });
    const page = await call(server.url, 'GET', '/admin', { token: adminToken });
    const metrics = await call(server.url, 'GET', '/metrics', { token: METRICS_TOKEN });
    for (const text of [overview.text, page.text, metrics.text]) {
      if (password) expect(text).not.toContain(`:${password}@`);
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(METRICS_TOKEN);
      expect(text).not.toContain(adminToken);
    }
  });
});

describe('sync lag on the page and in /metrics', () => {
  it("shows each followed tree from sync_state (following or stale), the last sync run's lag chart, and the gauge", async () => {
    const sql = store.database!.sql;
    await sql`insert into sync_state (source_dir, following, lag_ms, lag_p99_ms, pending, oldest_pending_ms, last_event_at, updated_at)
              values ('/srv/app-data', true, 420, 900, 0, 0, now(), now()),
                     ('/srv/old-data', true, 900, 900, 2, 7000, now() - interval '1 hour', now() - interval '1 hour')`;
    const run = await startRun(store.database!, { command: 'sync', source: '/srv/app-data' });
    const t = Date.now();
    await run.finish({
      exitCode: 0,
      counts: { sync: { imported: 3, unchanged: 0, deleted: 0, errors: 0 } },
      progress: {
        done: 3,
        pending: 0,
        lagSamples: [
          [t - 10_000, 300],
          [t - 5000, 1200],
          [t, 420],
        ],
      },
    });
    const overview = await call(server.url, 'GET', '/admin/api/overview', { token: adminToken });
    const cutover = overview.body.sections.cutover;
    expect(cutover.syncs).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ sourceDir: '/srv/app-data', following: true, stale: false, lagSeconds: 0.42 }),
        expect.objectContaining({ sourceDir: '/srv/old-data', stale: true, lagSeconds: 7, pending: 2 }),
      ]),
    );
    expect(cutover.syncLagSamples).toHaveLength(3);
    const page = await call(server.url, 'GET', '/admin', { token: adminToken });
    expect(page.text).toContain('aria-label="sync lag (s), last samples"');
    expect(page.text).toMatch(/\/srv\/old-data<\/td><td><span class="badge bad">stale/);
    const metrics = await call(server.url, 'GET', '/metrics', { token: METRICS_TOKEN });
    expect(metrics.text).toContain('pgferry_sync_lag_seconds{source="/srv/app-data"} 0.42');
    expect(metrics.text).toContain('pgferry_sync_lag_seconds{source="/srv/old-data"} 7');
  });
});

describe('/metrics', () => {
  it('answers METRICS_TOKEN and admins with HTTP, store, pool, slow-query, run, journal and sync-lag metrics', async () => {
    await call(server.url, 'POST', '/v1/conversations', { token: userToken, body: { title: 'hello' } });
    await call(server.url, 'GET', '/v1/conversations', { token: userToken });
    // Two dual writes waiting in the journal under DATA_DIR (PostgreSQL behind): the gauge reads them when scraped.
    const journal = new Journal(storage.dataDir);
    await journal.append([
      { kind: 'conversations', rel: 'conversations/u/a.json' },
      { kind: 'conversations', rel: 'conversations/u/b.json' },
    ]);
    await journal.close();
    expect((await call(server.url, 'GET', '/metrics', { token: 'wrong-token-0123456789' })).status).toBe(401);
    const byAdmin = await call(server.url, 'GET', '/metrics', { token: adminToken });
    expect(byAdmin.status).toBe(200);
    const answer = await call(server.url, 'GET', '/metrics', { token: METRICS_TOKEN });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = answer.text;
    expect(text).toMatch(/pgferry_http_request_duration_seconds_count\{method="GET",route="\/v1\/conversations",status="200"\} [1-9]/);
    expect(text).toMatch(/pgferry_http_request_duration_seconds_count\{method="GET",route="\/admin",status="403"\} [1-9]/);
    expect(text).toMatch(
      /pgferry_store_operation_duration_seconds_count\{repository="conversations",operation="list",backend="postgres",outcome="ok"\} [1-9]/,
    );
    expect(text).toMatch(/pgferry_db_pool_connections\{state="max"\} \d+/);
    expect(text).toMatch(/pgferry_db_pool_connections\{state="in_use"\} \d+/);
    expect(text).toMatch(/pgferry_db_pool_connections\{state="waiting"\} 0/);
    expect(text).toMatch(/pgferry_db_pool_connections\{state="idle"\} \d+/);
    expect(text).toMatch(/pgferry_db_slow_queries_total [1-9]/);
    expect(text).toMatch(/pgferry_runs_total\{command="import",status="failed"\} 1/);
    expect(text).toMatch(/pgferry_run_records_total\{command="import",kind="conversations",count="rejected"\} 1/);
    expect(text).toContain('pgferry_journal_depth{repository="conversations"} 2');
    expect(text).toContain('# TYPE pgferry_sync_lag_seconds gauge');
    expect(text).not.toMatch(/plain_user|root_admin/);
  });
});

describe('admin page on JSON files', () => {
  let json: StorageFixture;
  let jsonStore: Store;
  let jsonServer: TestServer;
  beforeAll(async () => {
    json = await createStorage('json');
    jsonStore = await json.open();
    jsonServer = await startServer({ store: jsonStore, config: testConfig({ DATA_DIR: json.dataDir }) });
  });
  afterAll(async () => {
    await jsonServer?.close();
    await jsonStore?.close();
    await json?.cleanup();
  });

  it('shows the configuration and says which sections need PostgreSQL (dev mode: X-User-Id and X-User-Role)', async () => {
    const page = await call(jsonServer.url, 'GET', '/admin', { user: 'dev_admin', headers: { 'x-user-role': 'admin' } });
    expect(page.status).toBe(200);
    expect(page.text).toContain('no database (JSON files)');
    expect(page.text).toContain('needs a reachable PostgreSQL');
    expect((await call(jsonServer.url, 'GET', '/admin', { user: 'dev_user' })).status).toBe(403);
    const metrics = await call(jsonServer.url, 'GET', '/metrics', { user: 'dev_admin', headers: { 'x-user-role': 'admin' } });
    expect(metrics.text).toContain('pgferry_http_request_duration_seconds');
    expect(metrics.text).not.toContain('pgferry_db_pool_connections{');
  });
});
