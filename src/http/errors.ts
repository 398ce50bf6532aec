import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ConsumeResult, UsageStatus } from '../domain/usage.ts';
import { ERROR_CODES, type ErrorCode, PgFerryError } from '../errors.ts';
import { redactSecrets } from '../log.ts';

/**
 * The one error path of the HTTP service. Every failure becomes
 * `{error: {code, message, requestId}}` with the status from ERROR_CODES
 * (src/errors.ts). Client errors keep their message (it describes the
 * client's own input); server errors never expose a stack or an internal
 * message — the details go to the log, keyed by the request id.
 */

/** Seconds a client should wait before retrying when the database is unreachable. */
export const RETRY_AFTER_UNAVAILABLE_SECONDS = 5;

export interface ErrorBody {
  error: { code: ErrorCode; message: string; requestId: string };
  /** Present on QUOTA_EXCEEDED: the caller's usage at the time of the refusal. */
  usage?: UsageStatus;
}

/** 429 for a refused `consume`: carries the usage for the body and Retry-After. */
export function quotaExceeded(result: ConsumeResult): PgFerryError {
  const { allowed: _allowed, ...usage } = result;
  const window = usage.daily.remaining === 0 ? 'daily' : 'monthly';
  return new PgFerryError('QUOTA_EXCEEDED', `the ${window} query limit of the ${usage.tier} tier is reached`, { usage });
}

/** Seconds until every exhausted window has reset (at least 1). */
export function retryAfterForUsage(usage: UsageStatus, now = Date.now()): number {
  const blocking = [usage.daily, usage.monthly].filter((w) => w.remaining !== null && w.remaining <= 0);
  const until = Math.max(...(blocking.length > 0 ? blocking : [usage.daily]).map((w) => Date.parse(w.resetsAt)));
  return Number.isFinite(until) ? Math.max(1, Math.ceil((until - now) / 1000)) : 60;
}

interface HttpError {
  status: number;
  code: ErrorCode;
  message: string;
  headers: Record<string, string>;
  usage?: UsageStatus;
  /** Log at error level with the original error (server-side failure). */
  serverFault: boolean;
}

const STATUS_TO_CODE: Record<number, ErrorCode> = {
  400: 'INVALID_INPUT',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  422: 'UNPROCESSABLE',
};

const clip = (text: string, max = 300) => (text.length > max ? `${text.slice(0, max)}…` : text);

function fromPgFerryError(error: PgFerryError): HttpError {
  const status = ERROR_CODES[error.code].status;
  const headers: Record<string, string> = {};
  if (error.code === 'UNAVAILABLE') {
    headers['retry-after'] = String(RETRY_AFTER_UNAVAILABLE_SECONDS);
    return {
      status,
      code: error.code,
      message: `a service this request needs is unavailable; retry in ${RETRY_AFTER_UNAVAILABLE_SECONDS} seconds`,
      headers,
      serverFault: false,
    };
  }
  if (error.code === 'QUOTA_EXCEEDED') {
    const usage = error.details?.usage as UsageStatus | undefined;
    headers['retry-after'] = String(usage ? retryAfterForUsage(usage) : 60);
    return { status, code: error.code, message: error.message, headers, serverFault: false, ...(usage ? { usage } : {}) };
  }
  if (error.code === 'UNAUTHORIZED') headers['www-authenticate'] = 'Bearer realm="pgferry"';
  if (status >= 500) {
    return { status, code: error.code, message: 'an internal error occurred; the server log has the details', headers, serverFault: true };
  }
  return { status, code: error.code, message: clip(redactSecrets(error.message)), headers, serverFault: false };
}

/** Fastify's own errors: validation, body parsing, content type, routing. */
function fromFrameworkError(error: FastifyError): HttpError | undefined {
  if (error.validation) {
    return { status: 400, code: 'INVALID_INPUT', message: clip(error.message), headers: {}, serverFault: false };
  }
  const status = error.statusCode;
  if (typeof status !== 'number' || status < 400 || status >= 500) return undefined;
  const code = STATUS_TO_CODE[status] ?? 'INVALID_INPUT';
  let message: string;
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      message = 'the request body is larger than the configured limit (BODY_LIMIT_BYTES)';
      break;
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      message = 'unsupported content type: send the body as application/json';
      break;
    default:
      message = error instanceof SyntaxError ? `the body is not valid JSON: ${error.message}` : error.message;
  }
  return { status: ERROR_CODES[code].status, code, message: clip(redactSecrets(message)), headers: {}, serverFault: false };
}

export function toHttpError(error: unknown): HttpError {
  if (error instanceof PgFerryError) return fromPgFerryError(error);
  const framework = error instanceof Error ? fromFrameworkError(error as FastifyError) : undefined;
  if (framework) return framework;
  return {
    status: 500,
    code: 'INTERNAL',
    message: 'an internal error occurred; the server log has the details',
    headers: {},
    serverFault: true,
  };
}

export function sendError(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const http = toHttpError(error);
  if (http.serverFault) request.log.error({ err: error }, 'request failed');
  else if (http.code === 'UNAVAILABLE') request.log.warn({ err: error }, 'request failed: unavailable');
  else request.log.debug({ code: http.code, message: http.message }, 'request rejected');
  const body: ErrorBody = { error: { code: http.code, message: http.message, requestId: String(request.id) } };
  if (http.usage) body.usage = http.usage;
  return reply
    .code(http.status)
    .headers({ ...http.headers, 'x-request-id': String(request.id) })
    .type('application/json; charset=utf-8')
    .send(body);
}

/** Installs the error handler, the 404 handler and the handler for router-level errors (bad URL encoding). */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => sendError(error, request, reply));
  app.setNotFoundHandler((request, reply) =>
    sendError(new PgFerryError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]?.slice(0, 200)}`), request, reply),
  );
}

/** What Node's HTTP parser refused, as the error the client gets. */
function clientErrorOf(error: NodeJS.ErrnoException): { code: ErrorCode; message: string } {
  if (error.code === 'HPE_HEADER_OVERFLOW')
    return { code: 'HEADERS_TOO_LARGE', message: 'the request headers are larger than the server accepts' };
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT')
    return { code: 'REQUEST_TIMEOUT', message: 'the request did not arrive completely in time' };
  return { code: 'INVALID_INPUT', message: 'the request is not valid HTTP/1.1 (bad request line, header or framing)' };
}

/**
 * Fastify's `clientErrorHandler`: answers for requests Node's parser refused
 * before any route saw them (bad request line → 400, headers too large →
 * 431, timeout → 408). They carry the documented error body like every other
 * answer; the connection is then closed, since the byte stream is unusable.
 */
export function answerClientError(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  if (socket.writable) {
    const { code, message } = clientErrorOf(error);
    const status = ERROR_CODES[code].status;
    const requestId = randomUUID();
    const body = JSON.stringify({ error: { code, message, requestId } } satisfies ErrorBody);
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}
