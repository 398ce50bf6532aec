import { TIERS } from '../config.ts';
import { MAX_LIST_LIMIT, MAX_MESSAGES_LIMIT, MAX_SEARCH_LIMIT, MAX_TITLE_LENGTH } from '../domain/conversations.ts';
import { RECORD_ID_PATTERN, USER_ID_PATTERN } from '../domain/ids.ts';
import { ERROR_CODES } from '../errors.ts';

/**
 * JSON schemas of the HTTP API. The same objects validate requests (Fastify
 * + Ajv) and generate the OpenAPI document (@fastify/swagger), so the docs
 * cannot drift from what the service accepts. Shared response shapes are
 * registered with `$id` and appear under components.schemas.
 */

/** Record ids never contain "."; user ids may, but never "..". */
export const RECORD_ID = {
  type: 'string',
  pattern: RECORD_ID_PATTERN.source,
  description: '1-128 characters: letters, digits, "_" and "-", starting with a letter or digit.',
} as const;
export const USER_ID = {
  type: 'string',
  pattern: `^(?!.*\\.\\.)${USER_ID_PATTERN.source.slice(1)}`,
  description: 'The user id (a JWT `sub`): 1-128 characters from letters, digits and `_.@|+=:-`, no "..".',
} as const;

export const CURSOR = {
  type: 'string',
  minLength: 1,
  maxLength: 1024,
  pattern: '^[A-Za-z0-9_-]+={0,2}$',
  description: 'Opaque: pass back the `nextCursor` value exactly as returned.',
} as const;

export const TITLE = { type: 'string', maxLength: MAX_TITLE_LENGTH } as const;

export const idParams = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id: RECORD_ID },
} as const;

export const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: MAX_LIST_LIMIT, description: `Default 50, maximum ${MAX_LIST_LIMIT}.` },
    cursor: CURSOR,
  },
} as const;

export const getQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    messagesLimit: {
      type: 'integer',
      minimum: 1,
      maximum: MAX_MESSAGES_LIMIT,
      description: `Messages per page, oldest first; default and maximum ${MAX_MESSAGES_LIMIT}.`,
    },
    messagesCursor: CURSOR,
  },
} as const;

export const searchQuery = {
  type: 'object',
  required: ['q'],
  additionalProperties: false,
  properties: {
    q: {
      type: 'string',
      minLength: 1,
      maxLength: MAX_TITLE_LENGTH,
      description: 'Case-insensitive substring of a title or a user message.',
    },
    limit: { type: 'integer', minimum: 1, maximum: MAX_SEARCH_LIMIT },
  },
} as const;

export const createBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    title: { ...TITLE, description: 'Default "New Conversation".' },
  },
} as const;

export const titleBody = {
  type: 'object',
  required: ['title'],
  additionalProperties: false,
  properties: { title: TITLE },
} as const;

export const userMessageBody = {
  type: 'object',
  required: ['content'],
  additionalProperties: false,
  properties: {
    content: { type: 'string', minLength: 1, description: 'The user message; the body limit bounds its size.' },
  },
} as const;

export const assistantMessageBody = {
  type: 'object',
  required: ['stage1', 'stage2', 'stage3'],
  additionalProperties: false,
  properties: {
    stage1: { type: 'array', description: 'Each model\'s response, e.g. [{"model", "response"}].' },
    stage2: { type: 'array', description: 'Each model\'s ranking, e.g. [{"model", "ranking", "parsed_ranking"}].' },
    stage3: { type: ['object', 'null'], description: 'The final answer, e.g. {"model", "response"}.' },
    metadata: { type: ['object', 'null'], description: 'Optional: label_to_model, aggregate_rankings.' },
  },
} as const;

export const tierParams = {
  type: 'object',
  required: ['userId'],
  additionalProperties: false,
  properties: { userId: USER_ID },
} as const;

export const tierBody = {
  type: 'object',
  required: ['tier'],
  additionalProperties: false,
  properties: {
    tier: { type: 'string', minLength: 1, maxLength: 64, description: `One of ${TIERS.join(', ')}; anything else is 422.` },
  },
} as const;

// ---- shared response shapes (components.schemas) ----

const TIMESTAMP = { type: 'string', format: 'date-time' } as const;

export const SHARED_SCHEMAS = [
  {
    $id: 'Error',
    type: 'object',
    required: ['error'],
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message', 'requestId'],
        properties: {
          code: { type: 'string', enum: Object.keys(ERROR_CODES) },
          message: { type: 'string' },
          requestId: { type: 'string' },
        },
      },
      usage: { $ref: 'Usage#', description: 'Only with QUOTA_EXCEEDED.' },
    },
  },
  {
    $id: 'UsageWindow',
    type: 'object',
    required: ['used', 'limit', 'remaining', 'resetsAt'],
    properties: {
      used: { type: 'integer' },
      limit: { type: ['integer', 'null'], description: 'null = unlimited' },
      remaining: { type: ['integer', 'null'] },
      resetsAt: TIMESTAMP,
    },
  },
  {
    $id: 'Usage',
    type: 'object',
    required: ['userId', 'tier', 'daily', 'monthly', 'totalQueries'],
    properties: {
      userId: { type: 'string' },
      tier: { type: 'string', enum: [...TIERS] },
      daily: { $ref: 'UsageWindow#' },
      monthly: { $ref: 'UsageWindow#' },
      totalQueries: { type: 'integer' },
    },
  },
  {
    $id: 'ConversationSummary',
    type: 'object',
    required: ['id', 'title', 'createdAt', 'updatedAt', 'messageCount'],
    properties: {
      id: { type: 'string' },
      title: { type: 'string' },
      createdAt: TIMESTAMP,
      updatedAt: TIMESTAMP,
      messageCount: { type: 'integer' },
    },
  },
  {
    $id: 'Message',
    type: 'object',
    description:
      'A user message `{role: "user", content}` or an assistant message `{role: "assistant", stage1, stage2, stage3, metadata?}`.',
    required: ['role', 'position'],
    properties: {
      role: { type: 'string', enum: ['user', 'assistant'] },
      position: { type: 'integer' },
      content: { type: 'string' },
      stage1: {},
      stage2: {},
      stage3: {},
      metadata: {},
      createdAt: { type: ['string', 'null'], format: 'date-time' },
    },
  },
  {
    $id: 'Conversation',
    type: 'object',
    required: ['id', 'title', 'createdAt', 'updatedAt', 'messageCount', 'messages', 'nextMessagesCursor'],
    properties: {
      id: { type: 'string' },
      title: { type: 'string' },
      createdAt: TIMESTAMP,
      updatedAt: TIMESTAMP,
      messageCount: { type: 'integer' },
      messages: { type: 'array', items: { $ref: 'Message#' } },
      nextMessagesCursor: { type: ['string', 'null'] },
    },
  },
  {
    $id: 'ConversationPage',
    type: 'object',
    required: ['items', 'nextCursor'],
    properties: {
      items: { type: 'array', items: { $ref: 'ConversationSummary#' } },
      nextCursor: { type: ['string', 'null'] },
    },
  },
] as const;

export const ref = (id: (typeof SHARED_SCHEMAS)[number]['$id']) => ({ $ref: `${id}#` });

const SUCCESS_DESCRIPTIONS: Record<number, string> = { 200: 'OK', 201: 'Created', 204: 'No content' };

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'INVALID_INPUT: the request failed validation',
  401: 'UNAUTHORIZED: missing or invalid credentials',
  403: 'FORBIDDEN: the admin role is needed',
  404: 'NOT_FOUND: no such conversation for this user',
  409: 'CONFLICT: a request with this Idempotency-Key is still in progress',
  413: 'PAYLOAD_TOO_LARGE: the body exceeds BODY_LIMIT_BYTES',
  415: 'UNSUPPORTED_MEDIA_TYPE: send application/json',
  422: 'UNPROCESSABLE: unknown tier',
  429: 'QUOTA_EXCEEDED: limit reached; see Retry-After and `usage`',
  503: 'UNAVAILABLE: the database is unreachable; see Retry-After',
};

/** Response map for a route: its success responses plus the error statuses it can return. */
export function responses(success: Record<number, unknown>, errorStatuses: number[]): Record<number, unknown> {
  const out: Record<number, unknown> = {};
  for (const [status, schema] of Object.entries(success)) {
    out[Number(status)] = { description: SUCCESS_DESCRIPTIONS[Number(status)] ?? 'Success', ...(schema as object) };
  }
  for (const status of errorStatuses) out[status] = { description: ERROR_DESCRIPTIONS[status] ?? 'Error', ...ref('Error') };
  return out;
}

/** Errors every authenticated route can return. */
export const COMMON_ERRORS = [400, 401, 503];

/** OpenAPI security of the /v1 routes: a bearer JWT, or X-User-Id in AUTH_MODE=dev. */
export const SECURITY: Array<Record<string, string[]>> = [{ bearerAuth: [] }, { devUserId: [] }];
