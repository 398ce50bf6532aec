import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ADMIN_CSS, ADMIN_JS } from '../../admin/assets.ts';
import { collectSections, renderLogin, renderMessage, renderPage, renderRun, renderSections } from '../../admin/page.ts';
import type { AdminContext } from '../../admin/sections/types.ts';
import type { Config } from '../../config.ts';
import { PgFerryError } from '../../errors.ts';
import { getRun, listRuns, runProblems } from '../../runs/record.ts';
import type { Store } from '../../store/types.ts';
import type { Authenticator, Principal } from '../auth.ts';

/**
 * The admin page (docs/admin.md): /admin (HTML, server-rendered),
 * /admin/sections (the fragment its script refreshes), /admin/runs/:id, and
 * JSON under /admin/api/. All need the admin role, sent as a header
 * (Authorization: Bearer, or X-User-Id + X-User-Role in dev mode) or as the
 * session cookie the sign-in form sets — so the page works without
 * JavaScript. The cookie is HttpOnly and SameSite=Strict, and only these
 * read-only routes and /metrics accept it; the /v1 API never does.
 */

export const ADMIN_COOKIE = 'pgferry_admin';
const DEV_PREFIX = 'dev:';

/** Headers only for the page: strict CSP (no inline code, nothing from another origin), never cached. */
const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
};

export interface AdminPageOptions {
  store: Store;
  config: Config;
  authenticator: Authenticator;
}

function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) {
      try {
        return decodeURIComponent(rest.join('='));
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/** The cookie's value as the headers an API client would send: a token, or (dev mode) a trusted admin user id. */
function cookieHeaders(value: string, config: Config): IncomingHttpHeaders {
  if (value.startsWith(DEV_PREFIX)) {
    if (config.auth.mode !== 'dev') throw new PgFerryError('UNAUTHORIZED', 'a dev sign-in is only accepted with AUTH_MODE=dev');
    return { 'x-user-id': value.slice(DEV_PREFIX.length), 'x-user-role': config.auth.adminValue };
  }
  return { authorization: `Bearer ${value}` };
}

export function createAdminAuth(config: Config, authenticator: Authenticator) {
  /** The caller, from headers first (API clients), then the session cookie (a browser). */
  async function principalOf(request: FastifyRequest): Promise<Principal> {
    const { headers } = request;
    if (headers.authorization !== undefined || headers['x-user-id'] !== undefined) return authenticator.authenticate(headers);
    const cookie = readCookie(headers.cookie, ADMIN_COOKIE);
    if (cookie === undefined) throw new PgFerryError('UNAUTHORIZED', 'sign in at /admin, or send "Authorization: Bearer <admin token>"');
    return authenticator.authenticate(cookieHeaders(cookie, config));
  }

  async function requireAdmin(request: FastifyRequest): Promise<Principal> {
    const principal = await principalOf(request);
    if (!principal.admin) throw new PgFerryError('FORBIDDEN', 'this page needs the admin role');
    return principal;
  }
  return { principalOf, requireAdmin };
}

/** The sign-in form (401) or a refusal page (403) instead of a JSON error, for a person in a browser. */
async function htmlAuth(
  request: FastifyRequest,
  reply: FastifyReply,
  requireAdmin: (request: FastifyRequest) => Promise<Principal>,
  devMode: boolean,
): Promise<Principal | undefined> {
  try {
    return await requireAdmin(request);
  } catch (error) {
    if (!(error instanceof PgFerryError) || (error.code !== 'UNAUTHORIZED' && error.code !== 'FORBIDDEN')) throw error;
    reply.headers(PAGE_HEADERS).type('text/html; charset=utf-8');
    const presented = request.headers.authorization !== undefined || request.headers['x-user-id'] !== undefined || hasCookie(request);
    if (error.code === 'FORBIDDEN') {
      reply.code(403).send(renderMessage('forbidden', 'Signed in, but without the admin role: this page needs an admin token.'));
    } else if (!presented) {
      // A browser that has not signed in yet goes to the sign-in form, as any web page does; a wrong credential is a 401.
      reply.code(303).header('location', '/admin/login').send('');
    } else {
      reply.code(401).send(renderLogin({ devMode, message: `sign-in refused: ${error.message}` }));
    }
    return undefined;
  }
}

function hasCookie(request: FastifyRequest): boolean {
  return readCookie(request.headers.cookie, ADMIN_COOKIE) !== undefined;
}

function parseRunId(raw: string): number {
  if (!/^\d{1,15}$/.test(raw)) throw new PgFerryError('INVALID_INPUT', 'run id: expected a positive integer', { field: 'id' });
  return Number(raw);
}

export function adminPageRoutes(app: FastifyInstance, options: AdminPageOptions): void {
  const { store, config, authenticator } = options;
  const { requireAdmin } = createAdminAuth(config, authenticator);
  const devMode = config.auth.mode === 'dev';
  const context = (): AdminContext => ({ config, store, db: store.database, now: new Date() });
  const who = (principal: Principal) => `${principal.userId} (admin${principal.via === 'dev' ? ', dev mode' : ''})`;
  const hide = { hide: true };

  app.register(async (admin) => {
    admin.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 32 * 1024 }, (_request, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });

    admin.get('/admin/assets/admin.css', { schema: hide }, async (_request, reply) =>
      reply.type('text/css; charset=utf-8').header('cache-control', 'max-age=300').send(ADMIN_CSS),
    );
    admin.get('/admin/assets/admin.js', { schema: hide }, async (_request, reply) =>
      reply.type('text/javascript; charset=utf-8').header('cache-control', 'max-age=300').send(ADMIN_JS),
    );

    admin.get('/admin', { schema: hide }, async (request, reply) => {
      const principal = await htmlAuth(request, reply, requireAdmin, devMode);
      if (!principal) return reply;
      const now = new Date();
      const results = await collectSections({ ...context(), now });
      return reply
        .headers(PAGE_HEADERS)
        .type('text/html; charset=utf-8')
        .send(renderPage(results, now, who(principal)));
    });

    admin.get('/admin/sections', { schema: hide }, async (request, reply) => {
      await requireAdmin(request);
      const now = new Date();
      const results = await collectSections({ ...context(), now });
      return reply.headers(PAGE_HEADERS).type('text/html; charset=utf-8').send(renderSections(results, now));
    });

    admin.get<{ Params: { id: string } }>('/admin/runs/:id', { schema: hide }, async (request, reply) => {
      const principal = await htmlAuth(request, reply, requireAdmin, devMode);
      if (!principal) return reply;
      const id = parseRunId(request.params.id);
      const db = store.database;
      const run = db ? await getRun(db.sql, id) : undefined;
      reply.headers(PAGE_HEADERS).type('text/html; charset=utf-8');
      if (!db || !run) return reply.code(404).send(renderMessage('not found', `no run ${id}`));
      return reply.send(renderRun(run, await runProblems(db.sql, id), who(principal)));
    });

    admin.get('/admin/login', { schema: hide }, async (_request, reply) =>
      reply.headers(PAGE_HEADERS).type('text/html; charset=utf-8').send(renderLogin({ devMode })),
    );

    admin.post<{ Body: { token?: unknown } | undefined }>('/admin/login', { schema: hide }, async (request, reply) => {
      const token = typeof request.body?.token === 'string' ? request.body.token.trim() : '';
      const isJwt = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
      const value = isJwt || !devMode ? token : `${DEV_PREFIX}${token}`;
      reply.headers(PAGE_HEADERS).type('text/html; charset=utf-8');
      let principal: Principal;
      try {
        if (token === '') throw new PgFerryError('UNAUTHORIZED', 'enter a token');
        principal = await authenticator.authenticate(cookieHeaders(value, config));
      } catch (error) {
        if (!(error instanceof PgFerryError) || error.code !== 'UNAUTHORIZED') throw error;
        return reply.code(401).send(renderLogin({ devMode, message: `sign-in refused: ${error.message}` }));
      }
      if (!principal.admin) return reply.code(403).send(renderMessage('forbidden', 'This token does not carry the admin role.'));
      // A session cookie: gone when the browser closes. HttpOnly keeps it from scripts; Strict keeps it off cross-site requests.
      const secure = request.protocol === 'https' ? '; Secure' : '';
      reply.header('set-cookie', `${ADMIN_COOKIE}=${encodeURIComponent(value)}; Path=/; HttpOnly; SameSite=Strict${secure}`);
      return reply.code(303).header('location', '/admin').send('');
    });

    admin.post('/admin/logout', { schema: hide }, async (_request, reply) => {
      reply.header('set-cookie', `${ADMIN_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`);
      return reply.code(303).header('location', '/admin').send('');
    });

    // ---- JSON ----
    admin.get('/admin/api/overview', { schema: hide }, async (request) => {
      await requireAdmin(request);
      const now = new Date();
      const results = await collectSections({ ...context(), now });
      return {
        generatedAt: now.toISOString(),
        sections: Object.fromEntries(results.map((r) => [r.id, r.error === undefined ? r.data : { error: r.error }])),
      };
    });

    admin.get<{ Querystring: { limit?: string } }>('/admin/api/runs', { schema: hide }, async (request) => {
      await requireAdmin(request);
      const limit = Number(request.query.limit ?? 20);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
        throw new PgFerryError('INVALID_INPUT', 'limit: expected an integer from 1 to 1000', { field: 'limit' });
      return { runs: store.database ? await listRuns(store.database.sql, { limit }) : [] };
    });

    admin.get<{ Params: { id: string } }>('/admin/api/runs/:id', { schema: hide }, async (request) => {
      await requireAdmin(request);
      const id = parseRunId(request.params.id);
      const db = store.database;
      const run = db ? await getRun(db.sql, id) : undefined;
      if (!db || !run) throw new PgFerryError('NOT_FOUND', `no run ${id}`);
      return { run, problems: await runProblems(db.sql, id) };
    });
  });
}
