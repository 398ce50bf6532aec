import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { exportJWK, generateKeyPair, type JWK, SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { isPgFerryError } from '../src/errors.ts';
import { buildApp } from '../src/http/app.ts';
import { assertAuthConfigured } from '../src/http/auth.ts';
import type { Store } from '../src/store/types.ts';
import {
  BACKENDS,
  call,
  createStorage,
  LogCapture,
  type StorageFixture,
  startServer,
  type TestServer,
  testConfig,
} from './helpers/http.ts';

/**
 * Authentication against a listening server: HS256 with a shared secret,
 * RS256/ES256 through a JWKS served on loopback, and every way a token can be
 * wrong (401). Also: the admin claim, dev mode, and that no token or secret
 * reaches the log.
 */

const SECRET = 'test-secret-that-is-long-enough-for-hs256!';
const ISSUER = 'https://issuer.test';
const AUDIENCE = 'pgferry-test';
const enc = new TextEncoder();

async function hs256(
  claims: Record<string, unknown>,
  options: { secret?: string; exp?: string | number; iss?: string; aud?: string } = {},
) {
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setIssuer(options.iss ?? ISSUER)
    .setAudience(options.aud ?? AUDIENCE)
    .setExpirationTime(options.exp ?? '5m');
  return jwt.sign(enc.encode(options.secret ?? SECRET));
}

interface JwksServer {
  url: string;
  keys: JWK[];
  hits: number;
  close(): Promise<void>;
}

async function serveJwks(keys: JWK[]): Promise<JwksServer> {
  const state = { hits: 0 };
  const server = http.createServer((req, res) => {
    state.hits++;
    if (req.url !== '/.well-known/jwks.json') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    keys,
    get hits() {
      return state.hits;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe.each(BACKENDS)('JWT auth on %s', (backend) => {
  let storage: StorageFixture;
  let store: Store;
  let server: TestServer;
  let jwks: JwksServer;
  const logs = new LogCapture('debug');
  type PrivateKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  const rsa = { kid: 'rsa-1' } as { kid: string; privateKey: PrivateKey };
  const ec = { kid: 'ec-1' } as { kid: string; privateKey: PrivateKey };
  const issued: string[] = [];

  async function signed(alg: 'RS256' | 'ES256', claims: Record<string, unknown>, key = alg === 'RS256' ? rsa : ec, kid = key.kid) {
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg, kid })
      .setIssuedAt()
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setExpirationTime('5m')
      .sign(key.privateKey);
    issued.push(token);
    return token;
  }

  beforeAll(async () => {
    const rsaPair = await generateKeyPair('RS256');
    const ecPair = await generateKeyPair('ES256');
    rsa.privateKey = rsaPair.privateKey;
    ec.privateKey = ecPair.privateKey;
    jwks = await serveJwks([
      { ...(await exportJWK(rsaPair.publicKey)), kid: rsa.kid, alg: 'RS256', use: 'sig' },
      { ...(await exportJWK(ecPair.publicKey)), kid: ec.kid, alg: 'ES256', use: 'sig' },
    ]);
    storage = await createStorage(backend);
    store = await storage.open();
    const config = testConfig({
      AUTH_MODE: 'jwt',
      AUTH_JWT_SECRET: SECRET,
      AUTH_JWKS_URL: jwks.url,
      AUTH_ISSUER: ISSUER,
      AUTH_AUDIENCE: AUDIENCE,
    });
    server = await startServer({ store, config, logger: logs.logger });
  });
  afterAll(async () => {
    await server?.close();
    await store?.close();
    await storage?.cleanup();
    await jwks?.close();
  });

  const get = (token?: string, headers: Record<string, string> = {}) =>
    call(server.url, 'GET', '/v1/conversations', { ...(token !== undefined ? { token } : {}), headers });

  it('accepts a valid HS256 token: the user is its sub', async () => {
    const token = await hs256({ sub: 'alice' });
    issued.push(token);
    const created = await call(server.url, 'POST', '/v1/conversations', { token, body: { title: 'mine' } });
    expect(created.status).toBe(201);
    const list = await get(token);
    expect(list.status).toBe(200);
    expect(list.body.items.map((c: { title: string }) => c.title)).toEqual(['mine']);
    expect((await call(server.url, 'GET', '/v1/usage', { token })).body.userId).toBe('alice');
  });

  it('accepts RS256 and ES256 tokens verified through the JWKS', async () => {
    const rs = await get(await signed('RS256', { sub: 'auth0|rsa-user' }));
    expect(rs.status).toBe(200);
    const es = await get(await signed('ES256', { sub: 'firebase-uid-123' }));
    expect(es.status).toBe(200);
    expect(jwks.hits).toBeGreaterThanOrEqual(1);
  });

  it('rejects missing, malformed, forged, expired, alg:none and mis-addressed tokens with 401', async () => {
    const otherRsa = await generateKeyPair('RS256');
    const valid = await hs256({ sub: 'alice' });
    const [header, payload, signature] = valid.split('.') as [string, string, string];
    const tamperedPayload = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), sub: 'mallory' }),
    ).toString('base64url');
    const publicJwk = jwks.keys[0]!;
    const cases: Array<[string, Promise<string> | string | undefined, Record<string, string>?]> = [
      ['missing token', undefined],
      ['not a bearer scheme', undefined, { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }],
      ['garbage', 'not.a.jwt'],
      ['forged signature (other secret)', hs256({ sub: 'alice' }, { secret: 'another-secret-that-is-long-enough-too!!' })],
      ['tampered payload', `${header}.${tamperedPayload}.${signature}`],
      ['expired', hs256({ sub: 'alice' }, { exp: Math.floor(Date.now() / 1000) - 120 })],
      ['alg none', new UnsecuredJWT({ sub: 'alice', iss: ISSUER, aud: AUDIENCE }).setIssuedAt().setExpirationTime('5m').encode()],
      ['wrong issuer', hs256({ sub: 'alice' }, { iss: 'https://evil.test' })],
      ['wrong audience', hs256({ sub: 'alice' }, { aud: 'someone-else' })],
      ['no sub', hs256({})],
      ['sub not a valid user id', hs256({ sub: '../../etc' })],
      ['unknown signing key (RS256)', signed('RS256', { sub: 'alice' }, { kid: 'rsa-1', privateKey: otherRsa.privateKey })],
      ['unknown kid', signed('RS256', { sub: 'alice' }, rsa, 'no-such-kid')],
      // Key confusion: an HS256 token whose "secret" is the RSA public key.
      ['HS256 signed with the public key', hs256({ sub: 'alice' }, { secret: JSON.stringify(publicJwk) })],
    ];
    for (const [name, tokenPromise, headers] of cases) {
      const token = await tokenPromise;
      if (token) issued.push(token);
      const answer = await get(token, headers);
      expect(answer.status, name).toBe(401);
      expect(answer.body.error.code, name).toBe('UNAUTHORIZED');
      expect(answer.headers.get('www-authenticate'), name).toContain('Bearer');
      expect(answer.body.error.message, name).not.toMatch(/ERR_|at .*\.js/);
    }
    // In jwt mode, X-User-Id alone is not a credential.
    expect((await get(undefined, { 'x-user-id': 'alice' })).status).toBe(401);
  });

  it('grants admin routes only to tokens with the admin claim', async () => {
    const user = await hs256({ sub: 'bob' });
    const admin = await hs256({ sub: 'boss', role: 'admin' });
    const adminList = await hs256({ sub: 'boss2', role: ['user', 'admin'] });
    issued.push(user, admin, adminList);
    const denied = await call(server.url, 'PUT', '/v1/admin/users/bob/tier', { token: user, body: { tier: 'pro' } });
    expect(denied.status).toBe(403);
    const granted = await call(server.url, 'PUT', '/v1/admin/users/bob/tier', { token: admin, body: { tier: 'pro' } });
    expect(granted.status).toBe(200);
    expect(granted.body.tier).toBe('pro');
    const viaList = await call(server.url, 'PUT', '/v1/admin/users/bob/tier', { token: adminList, body: { tier: 'free' } });
    expect(viaList.status).toBe(200);
    // A forged admin token is still just a 401.
    const forged = await hs256({ sub: 'boss', role: 'admin' }, { secret: 'another-secret-that-is-long-enough-too!!' });
    issued.push(forged);
    expect((await call(server.url, 'PUT', '/v1/admin/users/bob/tier', { token: forged, body: { tier: 'pro' } })).status).toBe(401);
  });

  it('moves report jobs only with the jobs:write scope or the admin role; the audit log is for admins', async () => {
    const owner = await hs256({ sub: 'forms-owner' });
    const stranger = await hs256({ sub: 'forms-stranger' });
    const worker = await hs256({ sub: 'report-worker', scope: 'openid jobs:write' });
    const scpWorker = await hs256({ sub: 'report-worker-2', scp: ['jobs:write'] });
    const admin = await hs256({ sub: 'forms-boss', role: 'admin' });
    issued.push(owner, stranger, worker, scpWorker, admin);
    const created = await call(server.url, 'POST', '/v1/submissions', {
      token: owner,
      body: { module: 'civil', formData: { fields: { project_name: 'Tower' } } },
    });
    expect(created.status).toBe(201);
    const job = await call(server.url, 'POST', `/v1/submissions/${created.body.id}/jobs`, { token: owner, body: {} });
    expect(job.status).toBe(201);
    const jobUrl = `/v1/jobs/${job.body.id}`;
    expect((await call(server.url, 'GET', jobUrl, { token: stranger })).status).toBe(404);
    expect((await call(server.url, 'POST', `${jobUrl}/progress`, { token: owner, body: { progress: 10 } })).status).toBe(403);
    expect((await call(server.url, 'POST', `${jobUrl}/progress`, { token: worker, body: { progress: 50 } })).body.state).toBe('running');
    expect((await call(server.url, 'POST', `${jobUrl}/progress`, { token: scpWorker, body: { progress: 60 } })).status).toBe(200);
    const done = await call(server.url, 'POST', `${jobUrl}/finish`, { token: worker, body: { results: { excel: 'https://x/a.xlsx' } } });
    expect(done.body).toMatchObject({ state: 'done', progress: 100 });
    expect((await call(server.url, 'GET', jobUrl, { token: owner })).body.state).toBe('done');
    expect((await call(server.url, 'GET', '/v1/audit', { token: worker })).status).toBe(403);
    const audit = await call(server.url, 'GET', `/v1/audit?resourceId=${job.body.id}`, { token: admin });
    expect(audit.body.items.map((e: { action: string; userId: string }) => `${e.action}:${e.userId}`)).toEqual([
      'job.finish:report-worker',
      'job.progress:report-worker-2',
      'job.progress:report-worker',
      'job.create:forms-owner',
    ]);
  });

  it('writes no token, secret or password to the log', async () => {
    // An internal error whose message carries a connection string with a password.
    const leaky: Store = {
      ...store,
      usage: {
        ...store.usage,
        get: async () => {
          throw new Error('connect failed: postgres://app:hunter2-password@db.internal:5432/prod AKIAIOSFODNN7EXAMPLE');
        },
      },
      close: async () => {},
    };
    const logCapture = new LogCapture('debug');
    const temp = await startServer({
      store: leaky,
      config: testConfig({ AUTH_MODE: 'jwt', AUTH_JWT_SECRET: SECRET, AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCE }),
      logger: logCapture.logger,
    });
    try {
      const token = await hs256({ sub: 'carol' });
      issued.push(token);
      const answer = await call(temp.url, 'GET', '/v1/usage', { token, headers: { cookie: 'session=cookie-secret-value' } });
      expect(answer.status).toBe(500);
      expect(answer.body.error.code).toBe('INTERNAL');
      expect(answer.text).not.toContain('hunter2');
      expect(answer.text).not.toContain('db.internal');
      await sleep(20);
      expect(logCapture.text).toContain('request failed');
      for (const text of [logCapture.text, logs.text]) {
        expect(text).not.toContain('hunter2-password');
        expect(text).not.toContain('AKIAIOSFODNN7EXAMPLE');
        expect(text).not.toContain('cookie-secret-value');
        expect(text).not.toContain(SECRET);
      }
    } finally {
      await temp.close();
    }
    expect(issued.length).toBeGreaterThan(10);
    for (const token of issued) {
      expect(logs.text).not.toContain(token);
      // Not even the signature part alone.
      expect(logs.text).not.toContain(token.split('.')[2] || token);
    }
    expect(logs.text).toContain('request completed');
  });
});

describe('auth configuration', () => {
  let storage: StorageFixture;
  let store: Store;
  beforeAll(async () => {
    storage = await createStorage('json');
    store = await storage.open();
  });
  afterAll(async () => {
    await store?.close();
    await storage?.cleanup();
  });

  it('refuses to serve without a secret or a JWKS URL, and refuses dev mode in production', async () => {
    const noKeys = loadConfig({ AUTH_MODE: 'jwt' });
    await expect(buildApp({ store, config: noKeys })).rejects.toSatisfy((e) => isPgFerryError(e, 'CONFIG_ERROR'));
    expect(() => loadConfig({ AUTH_MODE: 'dev', NODE_ENV: 'production' })).toThrow(/AUTH_MODE/);
    // Even a config built by hand cannot slip dev mode into production.
    const forced = { ...testConfig(), nodeEnv: 'production' };
    expect(() => assertAuthConfigured(forced)).toThrow(/AUTH_MODE/);
  });

  it('dev mode: X-User-Id is the user, a warning is logged once, bad or missing ids are 401', async () => {
    const logs = new LogCapture('info');
    const server = await startServer({ store, config: testConfig({ AUTH_MODE: 'dev' }), logger: logs.logger });
    try {
      expect((await call(server.url, 'GET', '/v1/usage', { user: 'dev-user' })).body.userId).toBe('dev-user');
      expect((await call(server.url, 'GET', '/v1/usage')).status).toBe(401);
      for (const bad of ['../x', 'a b', 'x'.repeat(200), '.hidden']) {
        expect((await call(server.url, 'GET', '/v1/usage', { user: bad })).status, bad).toBe(401);
      }
      await call(server.url, 'GET', '/v1/usage', { user: 'dev-user' });
      const warnings = logs.records().filter((r) => String(r.msg).includes('AUTH_MODE=dev'));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]!.level).toBe(40);
    } finally {
      await server.close();
    }
  });

  it('AUTH_REQUIRE_EXP (default on) refuses a token without exp; AUTH_REQUIRE_EXP=false accepts it', async () => {
    const neverExpires = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().sign(enc.encode(SECRET));
    const strict = await startServer({ store, config: testConfig({ AUTH_MODE: 'jwt', AUTH_JWT_SECRET: SECRET }) });
    const lenient = await startServer({
      store,
      config: testConfig({ AUTH_MODE: 'jwt', AUTH_JWT_SECRET: SECRET, AUTH_REQUIRE_EXP: 'false' }),
    });
    try {
      const refused = await call(strict.url, 'GET', '/v1/usage', { token: neverExpires });
      expect(refused.status).toBe(401);
      expect(refused.body.error).toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringContaining('exp') });
      const withExp = await new SignJWT({ sub: 'alice' })
        .setProtectedHeader({ alg: 'HS256' })
        .setExpirationTime('5m')
        .sign(enc.encode(SECRET));
      expect((await call(strict.url, 'GET', '/v1/usage', { token: withExp })).status).toBe(200);
      const accepted = await call(lenient.url, 'GET', '/v1/usage', { token: neverExpires });
      expect(accepted.status).toBe(200);
      expect(accepted.body.userId).toBe('alice');
    } finally {
      await strict.close();
      await lenient.close();
    }
  });

  it('answers 503 (not 401) when the JWKS cannot be fetched', async () => {
    const dead = await serveJwks([]);
    await dead.close();
    const { privateKey } = await generateKeyPair('RS256');
    const server = await startServer({ store, config: testConfig({ AUTH_MODE: 'jwt', AUTH_JWKS_URL: dead.url }) });
    try {
      const token = await new SignJWT({ sub: 'alice' })
        .setProtectedHeader({ alg: 'RS256', kid: 'k' })
        .setExpirationTime('5m')
        .sign(privateKey);
      const answer = await call(server.url, 'GET', '/v1/usage', { token });
      expect(answer.status).toBe(503);
      expect(answer.headers.get('retry-after')).toBeTruthy();
    } finally {
      await server.close();
    }
  });
});
