import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AssistantMessageInput } from '../../domain/conversations.ts';
import { MAX_JSON_DEPTH, MESSAGES_PAGE_BYTES } from '../../domain/limits.ts';
import { invalidInput } from '../../errors.ts';
import { quotaExceeded } from '../errors.ts';
import {
  assistantMessageBody,
  COMMON_ERRORS,
  createBody,
  getQuery,
  idParams,
  listQuery,
  ref,
  responses,
  SECURITY,
  searchQuery,
  titleBody,
  userMessageBody,
} from '../schemas.ts';

/**
 * Conversations of the calling user (DESIGN section 3). Another user's
 * conversation is 404, exactly like one that does not exist: the store
 * never returns it, so these handlers cannot leak it.
 */

const TAGS = ['conversations'];

const clientChosenId = () =>
  invalidInput('conversation ids are minted by the server: send the body without "id" and use the id in the answer', { field: 'id' });

export function conversationRoutes(app: FastifyInstance): void {
  const userOf = (request: FastifyRequest) => request.principal.userId;

  app.post<{ Body: { title?: string } }>(
    '/conversations',
    {
      schema: {
        tags: TAGS,
        summary: 'Create a conversation',
        description: 'The server mints the id (a UUID); a body with `id` is 400, whatever the id (docs/decisions.md, "Ids").',
        security: SECURITY,
        body: createBody,
        response: responses({ 201: ref('Conversation') }, [...COMMON_ERRORS, 413, 415]),
      },
      preValidation: async (request) => {
        // A POST with no body at all creates an untitled conversation.
        if (request.body === undefined || request.body === null) request.body = {};
        // One answer for every client-chosen id — free, the caller's own or another user's — so an id reveals nothing.
        if (typeof request.body === 'object' && Object.hasOwn(request.body, 'id')) throw clientChosenId();
      },
    },
    async (request, reply) => {
      const conversation = await request.scope.conversations.create(userOf(request), request.body);
      reply.code(201).header('location', `/v1/conversations/${encodeURIComponent(conversation.id)}`);
      return conversation;
    },
  );

  app.get<{ Querystring: { limit?: number; cursor?: string } }>(
    '/conversations',
    {
      schema: {
        tags: TAGS,
        summary: 'List conversations, newest-updated first',
        description: 'Keyset pagination: pass `nextCursor` back as `cursor` for the next page.',
        security: SECURITY,
        querystring: listQuery,
        response: responses({ 200: ref('ConversationPage') }, COMMON_ERRORS),
      },
    },
    async (request) => request.scope.conversations.list(userOf(request), request.query),
  );

  app.get<{ Querystring: { q: string; limit?: number } }>(
    '/conversations/search',
    {
      schema: {
        tags: TAGS,
        summary: 'Search titles and user messages',
        security: SECURITY,
        querystring: searchQuery,
        response: responses(
          { 200: { type: 'object', required: ['items'], properties: { items: { type: 'array', items: ref('ConversationSummary') } } } },
          COMMON_ERRORS,
        ),
      },
    },
    async (request) => {
      const { q, limit } = request.query;
      const items = await request.scope.conversations.search(userOf(request), q, limit === undefined ? {} : { limit });
      return { items };
    },
  );

  app.get<{ Params: { id: string }; Querystring: { messagesLimit?: number; messagesCursor?: string } }>(
    '/conversations/:id',
    {
      schema: {
        tags: TAGS,
        summary: 'Get a conversation with its messages',
        description: `Messages oldest first, paged by \`messagesLimit\`/\`messagesCursor\` and by bytes: a page holds at most ${MESSAGES_PAGE_BYTES} bytes of messages (always at least one).`,
        security: SECURITY,
        params: idParams,
        querystring: getQuery,
        response: responses({ 200: ref('Conversation') }, [...COMMON_ERRORS, 404]),
      },
    },
    async (request) => request.scope.conversations.get(userOf(request), request.params.id, request.query),
  );

  app.patch<{ Params: { id: string }; Body: { title: string } }>(
    '/conversations/:id',
    {
      schema: {
        tags: TAGS,
        summary: 'Rename a conversation',
        security: SECURITY,
        params: idParams,
        body: titleBody,
        response: responses({ 200: ref('ConversationSummary') }, [...COMMON_ERRORS, 404, 413, 415]),
      },
    },
    async (request) => request.scope.conversations.updateTitle(userOf(request), request.params.id, request.body.title),
  );

  app.delete<{ Params: { id: string } }>(
    '/conversations/:id',
    {
      schema: {
        tags: TAGS,
        summary: 'Delete a conversation and its messages',
        security: SECURITY,
        params: idParams,
        response: responses({ 204: { type: 'null', description: 'Deleted.' } }, [...COMMON_ERRORS, 404]),
      },
    },
    async (request, reply: FastifyReply) => {
      await request.scope.conversations.delete(userOf(request), request.params.id);
      reply.code(204);
    },
  );

  app.post<{ Params: { id: string }; Body: { content: string } }>(
    '/conversations/:id/messages',
    {
      schema: {
        tags: TAGS,
        summary: 'Add a user message (counts one query)',
        description:
          "Counts one query against the caller's quota and appends the message in one atomic step. When the daily or monthly limit is reached: 429 with `Retry-After` and the usage in the body, and nothing is written. A conversation that does not exist is 404 and uses no quota.",
        security: SECURITY,
        params: idParams,
        body: userMessageBody,
        response: responses(
          {
            201: {
              type: 'object',
              required: ['message', 'usage'],
              properties: { message: ref('Message'), usage: ref('Usage') },
            },
          },
          [...COMMON_ERRORS, 404, 413, 415, 429],
        ),
      },
    },
    async (request, reply) => {
      // One atomic step in the store: a conversation that is not the caller's (404) counts nothing,
      // a refused quota (429) writes nothing.
      const sent = await request.scope.conversations.sendUserMessage(userOf(request), request.params.id, request.body.content, {
        consume: 1,
      });
      if (!sent.message) throw quotaExceeded(sent.usage);
      const { allowed: _allowed, ...usage } = sent.usage;
      reply.code(201);
      return { message: sent.message, usage };
    },
  );

  app.post<{ Params: { id: string }; Body: AssistantMessageInput }>(
    '/conversations/:id/assistant-messages',
    {
      schema: {
        tags: TAGS,
        summary: 'Add an assistant message (the three-stage answer)',
        description: `Stage values are JSON, nested at most ${MAX_JSON_DEPTH} levels. Does not count against the quota.`,
        security: SECURITY,
        params: idParams,
        body: assistantMessageBody,
        response: responses({ 201: ref('Message') }, [...COMMON_ERRORS, 404, 413, 415]),
      },
    },
    async (request, reply) => {
      const message = await request.scope.conversations.addAssistantMessage(userOf(request), request.params.id, request.body);
      reply.code(201);
      return message;
    },
  );
}
