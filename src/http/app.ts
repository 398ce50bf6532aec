import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import cors from '@fastify/cors';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import type { Config } from '../config.ts';
import { assertCleanInput } from '../domain/clean-input.ts';
import { invalidInput } from '../errors.ts';
import { jsonErrorOffset, jsonParseReason } from '../formats/json-error.ts';
import { type Logger, silentLogger } from '../log.ts';
import { createMetrics, type Metrics } from '../metrics/registry.ts';
import { instrumentStore } from '../metrics/store.ts';
import type { Store } from '../store/types.ts';
import { ObjectStores, UploadService } from '../uploads/service.ts';
import { createAuthenticator, type Principal } from './auth.ts';
import { renderDocsPage } from './docs.ts';
import { answerClientError, registerErrorHandling, sendError } from './errors.ts';
import { FORMS_SCHEMAS } from './forms-schemas.ts';
import { registerIdempotency } from './idempotency.ts';
import { adminRoutes } from './routes/admin.ts';
import { adminPageRoutes, createAdminAuth } from './routes/admin-page.ts';
import { conversationRoutes } from './routes/conversations.ts';
import { formsRoutes } from './routes/forms.ts';
import { healthRoutes } from './routes/health.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { uploadRoutes } from './routes/uploads.ts';
import { usageRoutes } from './routes/usage.ts';
import { SHARED_SCHEMAS } from './schemas.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller; set by the /v1 onRequest hook before any /v1 handler runs. */
    principal: Principal;
  }
}

/**
 * The HTTP service (DESIGN section 9): the Store as a REST API under /v1,
 * probes, and OpenAPI docs. `buildApp` only builds; src/http/server.ts
 * listens. Register order: plugins → decorators → hooks → routes.
 *
 * @example
 *   const app = await buildApp({ store, config, logger });
 *   await app.listen({ port: 8080 });
 */

export interface BuildAppOptions {
  store: Store;
  config: Config;
  logger?: Logger;
  /** Close the store when the app closes (the `serve` command owns its store; tests usually do not). */
  ownsStore?: boolean;
  /** JWKS fetch timeout in ms (default 5000). */
  jwksTimeoutMs?: number;
  /** Where upload bytes go (default: from config — S3 when S3_BUCKET_NAME is set, else DATA_DIR/files); closed with the app. */
  objects?: ObjectStores;
  /** The Prometheus registry and instruments (default: a new one for this app). */
  metrics?: Metrics;
}

export type App = FastifyInstance;

/** A client-supplied X-Request-Id is kept when it is short and plain; otherwise a UUID is generated. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

function genReqId(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

/**
 * One JSON line per request: id, route, status, latency and user — never
 * headers, bodies or query strings. The line has fixed, secret-free fields,
 * so it goes through a child logger with a narrow redaction list: the wildcard
 * paths of the root logger cost ~10 µs per line, a large share of a request.
 */
class RequestLogController extends LogController {
  private readonly accessLog: Logger;

  constructor(logger: Logger) {
    super({ requestIdLogLabel: 'requestId' });
    this.accessLog = logger.child({}, { redact: { paths: ['headers.authorization', 'headers.cookie'], censor: '***' } });
  }

  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const entry = {
      requestId: request.id,
      method: request.method,
      route: request.routeOptions.url,
      path: request.url.split('?', 1)[0]!.slice(0, 300),
      statusCode: reply.statusCode,
      responseTimeMs: Math.round(reply.elapsedTime * 100) / 100,
      userId: request.principal?.userId,
    };
    if (error) reply.log.error({ ...entry, err: error }, 'request errored');
    else if (reply.statusCode >= 500) this.accessLog.warn(entry, 'request completed');
    else this.accessLog.info(entry, 'request completed');
  }
}

/**
 * Query values arrive as strings; integer parameters are converted here, and
 * Ajv runs without type coercion so a body's `"title": 12` is refused rather
 * than silently turned into "12".
 */
async function coerceQueryIntegers(request: FastifyRequest): Promise<void> {
  const properties = (request.routeOptions.schema?.querystring as { properties?: Record<string, { type?: unknown }> } | undefined)
    ?.properties;
  if (!properties) return;
  const query = request.query as Record<string, unknown>;
  for (const [name, schema] of Object.entries(properties)) {
    const value = query[name];
    if (schema.type === 'integer' && typeof value === 'string' && /^-?\d{1,15}$/.test(value)) query[name] = Number(value);
  }
}

/**
 * The JSON body parser. Browsers and the app's frontend send
 * `content-type: application/json` on a POST or DELETE that has no body; the
 * API says no body is fine there, so an empty JSON body is parsed as no body
 * (Fastify's own parser answers 400 FST_ERR_CTP_EMPTY_JSON_BODY).
 *
 * The body is decoded as strict UTF-8: Fastify would decode invalid bytes as
 * U+FFFD and store the replacement silently; here they are a 400. The JSON
 * itself goes through Fastify's parser (`__proto__`/`constructor` keys stay
 * 400), and a syntax error names its place, never the body's text.
 */
function parseJsonBodies(app: App): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = body as Buffer;
    if (bytes.length === 0) return done(null, undefined);
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      return done(invalidInput('the body is not valid UTF-8: send JSON encoded as UTF-8', { field: 'body' }));
    }
    parseJson(request, text, (error, value) => {
      // An error for well-formed text is secure-json-parse refusing a `__proto__`/`constructor` key: its message quotes nothing.
      if (error && jsonErrorOffset(text) !== -1)
        done(invalidInput(`the body is not valid JSON: ${jsonParseReason(new SyntaxError(), text)}`, { field: 'body' }));
      else if (error) done(error);
      else done(null, value);
    });
  });
}

/** Headers a browser script may read from an answer (it sees only the safelisted ones otherwise). */
const EXPOSED_HEADERS = ['x-request-id', 'location', 'retry-after', 'www-authenticate', 'idempotent-replayed'];

/**
 * CORS for browsers calling the API from another origin (CORS_ORIGINS).
 * Off by default: without it a browser refuses cross-origin answers, which
 * is the safe default. Credentials (cookies) are not allowed: the API
 * authenticates with a bearer token, which a script sends explicitly.
 */
async function registerCors(app: App, origins: Config['http']['corsOrigins']): Promise<void> {
  if (origins !== '*' && origins.length === 0) return;
  await app.register(cors, {
    origin: origins === '*' ? '*' : origins,
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    exposedHeaders: EXPOSED_HEADERS,
    credentials: false,
    maxAge: 600,
  });
}

export async function buildApp(options: BuildAppOptions): Promise<App> {
  const { config } = options;
  const metrics = options.metrics ?? createMetrics({ db: options.store.database, dataDir: config.dataDir });
  // Every repository call the routes make is timed (pgferry_store_operation_duration_seconds).
  const store = instrumentStore(options.store, metrics);
  const logger = options.logger ?? silentLogger;
  const authenticator = createAuthenticator(config, { logger, ...(options.jwksTimeoutMs ? { jwksTimeoutMs: options.jwksTimeoutMs } : {}) });

  const app = Fastify({
    loggerInstance: logger,
    logController: new RequestLogController(logger),
    requestIdHeader: false,
    genReqId,
    bodyLimit: config.http.bodyLimitBytes,
    requestTimeout: 60_000,
    return503OnClosing: true,
    routerOptions: { maxParamLength: 512 },
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    clientErrorHandler: answerClientError,
    frameworkErrors: (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
      sendError(error, request, reply);
    },
  }) as unknown as App;

  // ---- plugins ----
  await registerCors(app, config.http.corsOrigins);
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'pgferry',
        version: '0.1.0',
        description:
          'The chat backend of the seed apps as a REST API: conversations, messages and per-user quotas, on JSON files or PostgreSQL. Errors are `{"error": {"code", "message", "requestId"}}`.',
      },
      tags: [
        { name: 'conversations', description: "The caller's conversations and messages" },
        { name: 'usage', description: 'Query quotas' },
        { name: 'submissions', description: "The forms app's submissions and their files (seed 002)" },
        { name: 'jobs', description: 'Report jobs: status polling, and transitions for workers' },
        { name: 'uploads', description: "The caller's uploaded files (bytes in object storage)" },
        { name: 'admin', description: 'Needs the admin claim' },
        { name: 'health', description: 'Probes (no authentication)' },
      ],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A JWT whose `sub` is the user id.' },
          devUserId: { type: 'apiKey', in: 'header', name: 'X-User-Id', description: 'Only with AUTH_MODE=dev (never in production).' },
        },
      },
    },
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
    },
  });
  for (const schema of [...SHARED_SCHEMAS, ...FORMS_SCHEMAS]) app.addSchema(schema);
  app.removeContentTypeParser('text/plain');
  parseJsonBodies(app);

  // ---- decorators ----
  app.decorateRequest('principal', null as unknown as Principal);

  // ---- hooks ----
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  app.addHook('preValidation', coerceQueryIntegers);
  app.addHook('onResponse', async (request, reply) => {
    // The route pattern, never the path: /v1/conversations/:id stays one series however many ids there are.
    const route = request.routeOptions.url ?? '(unmatched)';
    metrics.httpDuration.observe({ method: request.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });
  if (options.ownsStore) app.addHook('onClose', async () => store.close());
  const objects = options.objects ?? ObjectStores.fromConfig(config);
  app.addHook('onClose', async () => objects.close());
  const uploads = new UploadService({ store, objects, limits: config.uploads, logger });
  registerErrorHandling(app);
  if (config.auth.mode === 'dev') {
    logger.warn('AUTH_MODE=dev: the X-User-Id header is trusted without verification; never use this in production');
  }

  // ---- routes ----
  healthRoutes(app, store);
  await app.register(
    async (v1) => {
      v1.addHook('onRequest', async (request) => {
        request.principal = await authenticator.authenticate(request.headers);
      });
      v1.addHook('preHandler', async (request) => {
        assertCleanInput(request.body, 'body');
        assertCleanInput(request.query, 'query');
      });
      registerIdempotency(v1, store);
      conversationRoutes(v1);
      usageRoutes(v1);
      formsRoutes(v1, store);
      await uploadRoutes(v1, uploads);
      adminRoutes(v1);
    },
    { prefix: '/v1' },
  );

  adminPageRoutes(app, { store, config, authenticator });
  metricsRoutes(app, { config, metrics, requireAdmin: createAdminAuth(config, authenticator).requireAdmin });

  let docsPage: string | undefined;
  app.get('/docs/json', { schema: { hide: true } }, async () => app.swagger());
  app.get('/docs', { schema: { hide: true } }, async (_request, reply) => {
    docsPage ??= renderDocsPage(app.swagger() as Parameters<typeof renderDocsPage>[0]);
    return reply.type('text/html; charset=utf-8').send(docsPage);
  });

  return app;
}
