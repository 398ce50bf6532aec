import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { canonicalJson } from '../domain/json-values.ts';
import type { IdempotentAnswer, Store, StoreScope } from '../store/types.ts';
import { ref } from './schemas.ts';

/**
 * Safe retries (docs/http-api.md, "Safe retries"): an `Idempotency-Key`
 * header on any POST, PUT, PATCH or DELETE under /v1 makes the request
 * happen at most once per user and key within 24 h, with Stripe's semantics.
 *
 * Every write route's handler is wrapped (onRoute). With a key, the handler
 * runs inside `store.idempotency.run`: its store calls go to `request.scope`,
 * the repositories of the key's transaction (PostgreSQL) or critical section
 * (JSON), and its answer — status, serialized body, Location — is recorded
 * with the key before it is sent. So handlers never call `reply.send`: they
 * set the status and headers and return the body.
 *
 * A handler that throws records nothing (its write, if any, is rolled back on
 * PostgreSQL), so the key stays unused and a retry runs again.
 */

declare module 'fastify' {
  interface FastifyRequest {
    /** The repositories this request's handler writes through (the store, or the idempotency key's transaction). */
    scope: StoreScope;
  }
}

export const IDEMPOTENCY_HEADER = 'idempotency-key';
/** Set on an answer that is the stored one of an earlier request with the same key. */
export const REPLAYED_HEADER = 'idempotent-replayed';
const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** Headers of an answer that are part of it (replayed with it). */
const RECORDED_HEADERS = ['location'];

const KEY_SCHEMA = {
  type: 'string',
  minLength: 1,
  maxLength: 255,
  pattern: '^[\\x21-\\x7E]+$',
  description:
    'Makes a retry safe: the same key and request within 24 hours returns the first answer (with `Idempotent-Replayed: true`) and writes nothing again; the same key with another request is 422; while the first is still running, 409. Keys are per user. Send a new random key (e.g. a UUID) per operation and reuse it for its retries — notably after a 503.',
};

/** What "the same request" means: method, path and body (keys in any order: canonicalJson sorts them). */
export function requestHashOf(request: FastifyRequest): string {
  return createHash('sha256')
    .update(`${request.method}\n${request.url}\n`)
    .update(canonicalJson(request.body ?? null))
    .digest('hex');
}

function answerOf(reply: FastifyReply, body: unknown): IdempotentAnswer {
  const headers: Record<string, string> = {};
  for (const name of RECORDED_HEADERS) {
    const value = reply.getHeader(name);
    if (value !== undefined) headers[name] = String(value);
  }
  // The route's own serializer for this status: the stored text is exactly what is sent.
  return { status: reply.statusCode, body: body === undefined ? null : String(reply.serialize(body)), headers };
}

function sendAnswer(reply: FastifyReply, answer: IdempotentAnswer): FastifyReply {
  reply.code(answer.status).headers(answer.headers);
  if (answer.body === null) return reply.send();
  return reply.type('application/json; charset=utf-8').send(answer.body);
}

type Handler = RouteOptions['handler'];

function idempotent(handler: Handler, store: Store): Handler {
  return async function idempotentHandler(this: FastifyInstance, request, reply) {
    const key = request.headers[IDEMPOTENCY_HEADER];
    if (typeof key !== 'string') return handler.call(this, request, reply);
    const outcome = await store.idempotency.run(request.principal.userId, key, requestHashOf(request), async (scope) => {
      request.scope = scope;
      try {
        return answerOf(reply, await handler.call(this, request, reply));
      } finally {
        request.scope = store;
      }
    });
    if (outcome.replayed) reply.header(REPLAYED_HEADER, 'true');
    return sendAnswer(reply, outcome.answer);
  };
}

/** Document the header and its two refusals on a write route (OpenAPI), and let Ajv check its form (400). */
function describeHeader(route: RouteOptions): void {
  route.schema ??= {};
  const schema = route.schema as Record<string, unknown>;
  const headers = (schema.headers ?? { type: 'object', properties: {} }) as { properties: Record<string, unknown> };
  headers.properties[IDEMPOTENCY_HEADER] = KEY_SCHEMA;
  schema.headers = headers;
  const responses = schema.response as Record<number, unknown> | undefined;
  if (responses) {
    responses[409] ??= { description: 'CONFLICT: a request with this Idempotency-Key is still in progress', ...ref('Error') };
    responses[422] ??= { description: 'UNPROCESSABLE: this Idempotency-Key was used with another request', ...ref('Error') };
  }
}

/**
 * Install on the /v1 instance before its routes: every request starts with
 * `request.scope` = the store; every write route gets the key handling.
 */
export function registerIdempotency(v1: FastifyInstance, store: Store): void {
  v1.decorateRequest('scope', null as unknown as StoreScope);
  v1.addHook('onRequest', async (request) => {
    request.scope = store;
  });
  v1.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (!methods.some((method) => WRITE_METHODS.has(method))) return;
    describeHeader(route);
    route.handler = idempotent(route.handler, store);
  });
}
