import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Actor, NewUploadedFile, SubmissionFilter, SubmissionStatus } from '../../domain/forms.ts';
import { invalidInput, PgFerryError } from '../../errors.ts';
import type { AuditListOptions, Store } from '../../store/types.ts';
import { JOBS_WRITE_SCOPE } from '../auth.ts';
import {
  auditListQuery,
  createSubmissionBody,
  failBody,
  finishBody,
  formsRef,
  idParams,
  newFileBody,
  newJobBody,
  progressBody,
  statusBody,
  submissionListQuery,
} from '../forms-schemas.ts';
import { COMMON_ERRORS, responses, SECURITY } from '../schemas.ts';

/**
 * Seed 002's routes (docs/http-api.md, "Forms"): a user's submissions, their
 * files and report jobs; the job status polling route the app's frontends
 * use; job transitions for report workers; the audit log for admins.
 *
 * Isolation is the store's: every call passes the caller as an Actor, and a
 * submission (or a job or file of one) that is not the caller's is 404,
 * exactly like one that does not exist. Admins see every submission,
 * including the app's own without a user. A worker — a token with the
 * `jobs:write` scope, or an admin — moves any job through its states.
 *
 * Writes go straight to the store (its forms repositories are not part of
 * an Idempotency-Key's transaction): a retried POST with a key gets the
 * recorded answer back, but the write and the key do not commit together.
 */

const SUBMISSIONS = ['submissions'];
const JOBS = ['jobs'];

/** The caller as the store sees them, with where the request came from (for the audit log). */
function actorOf(request: FastifyRequest, options: { worker?: boolean } = {}): Actor {
  const { principal } = request;
  const worker = options.worker === true && (principal.scopes ?? []).includes(JOBS_WRITE_SCOPE);
  const userAgent = request.headers['user-agent'];
  return {
    userId: principal.userId,
    admin: principal.admin || worker,
    ip: request.ip ?? null,
    userAgent: typeof userAgent === 'string' ? userAgent.slice(0, 500) : null,
  };
}

/** Only a worker token or an admin moves jobs: a plain user polls them. */
function workerOf(request: FastifyRequest): Actor {
  const actor = actorOf(request, { worker: true });
  if (!actor.admin)
    throw new PgFerryError('FORBIDDEN', `moving a job needs a token with the "${JOBS_WRITE_SCOPE}" scope or the admin role`);
  return actor;
}

const clientChosenId = () =>
  invalidInput('submission ids are minted by the server: send the body without "id" and use the id in the answer', { field: 'id' });

export function formsRoutes(app: FastifyInstance, store: Store): void {
  app.post<{ Body: { module: string; formData: Record<string, unknown>; status?: SubmissionStatus; userId?: string | null } }>(
    '/submissions',
    {
      schema: {
        tags: SUBMISSIONS,
        summary: 'Create a submission',
        description:
          'The whole form document goes in `formData` (inline base64 signatures included, within BODY_LIMIT_BYTES); `siteName` and `visitDate` are derived from it. The server mints the id (`sub_<12 hex>`).',
        security: SECURITY,
        body: createSubmissionBody,
        response: responses({ 201: formsRef('Submission') }, [...COMMON_ERRORS, 403, 413, 415]),
      },
      preValidation: async (request) => {
        if (typeof request.body === 'object' && request.body !== null && Object.hasOwn(request.body, 'id')) throw clientChosenId();
      },
    },
    async (request, reply) => {
      const submission = await store.submissions.create(actorOf(request), request.body);
      reply.code(201).header('location', `/v1/submissions/${encodeURIComponent(submission.id)}`);
      return submission;
    },
  );

  app.get<{ Querystring: SubmissionFilter & { limit?: number; cursor?: string } }>(
    '/submissions',
    {
      schema: {
        tags: SUBMISSIONS,
        summary: "List the caller's submissions, newest first",
        description: 'Filters combine; keyset pagination: pass `nextCursor` back as `cursor`. Admins see every submission.',
        security: SECURITY,
        querystring: submissionListQuery,
        response: responses({ 200: formsRef('SubmissionPage') }, COMMON_ERRORS),
      },
    },
    async (request) => store.submissions.list(actorOf(request), request.query),
  );

  app.get<{ Params: { id: string } }>(
    '/submissions/:id',
    {
      schema: {
        tags: SUBMISSIONS,
        summary: 'Get a submission',
        security: SECURITY,
        params: idParams,
        response: responses({ 200: formsRef('Submission') }, [...COMMON_ERRORS, 404]),
      },
    },
    async (request) => store.submissions.get(actorOf(request), request.params.id),
  );

  app.patch<{ Params: { id: string }; Body: { status: SubmissionStatus } }>(
    '/submissions/:id',
    {
      schema: {
        tags: SUBMISSIONS,
        summary: "Set a submission's status",
        security: SECURITY,
        params: idParams,
        body: statusBody,
        response: responses({ 200: formsRef('Submission') }, [...COMMON_ERRORS, 404, 413, 415]),
      },
    },
    async (request) => store.submissions.updateStatus(actorOf(request), request.params.id, request.body.status),
  );

  app.delete<{ Params: { id: string } }>(
    '/submissions/:id',
    {
      schema: {
        tags: SUBMISSIONS,
        summary: 'Delete a submission with its jobs and files',
        security: SECURITY,
        params: idParams,
        response: responses({ 204: { type: 'null' } }, [...COMMON_ERRORS, 404]),
      },
    },
    async (request, reply) => {
      await store.submissions.delete(actorOf(request), request.params.id);
      reply.code(204);
      return undefined;
    },
  );

  app.get<{ Params: { id: string } }>(
    '/submissions/:id/files',
    {
      schema: {
        tags: SUBMISSIONS,
        summary: "A submission's uploaded files (photos, signatures, reports)",
        security: SECURITY,
        params: idParams,
        response: responses(
          { 200: { type: 'object', required: ['items'], properties: { items: { type: 'array', items: formsRef('UploadedFile') } } } },
          [...COMMON_ERRORS, 404],
        ),
      },
    },
    async (request) => ({ items: await store.uploadedFiles.list(actorOf(request), request.params.id) }),
  );

  app.post<{ Params: { id: string }; Body: NewUploadedFile }>(
    '/submissions/:id/files',
    {
      schema: {
        tags: SUBMISSIONS,
        summary: 'Record an uploaded file of a submission (the bytes live in object storage)',
        security: SECURITY,
        params: idParams,
        body: newFileBody,
        response: responses({ 201: formsRef('UploadedFile') }, [...COMMON_ERRORS, 404, 413, 415]),
      },
    },
    async (request, reply) => {
      const file = await store.uploadedFiles.add(actorOf(request), request.params.id, request.body);
      reply.code(201);
      return file;
    },
  );

  app.get<{ Params: { id: string } }>(
    '/submissions/:id/jobs',
    {
      schema: {
        tags: JOBS,
        summary: "A submission's report jobs, oldest first",
        security: SECURITY,
        params: idParams,
        response: responses(
          { 200: { type: 'object', required: ['items'], properties: { items: { type: 'array', items: formsRef('Job') } } } },
          [...COMMON_ERRORS, 404],
        ),
      },
    },
    async (request) => ({ items: await store.jobs.listBySubmission(actorOf(request), request.params.id) }),
  );

  app.post<{ Params: { id: string }; Body: { meta?: Record<string, unknown> } | undefined }>(
    '/submissions/:id/jobs',
    {
      schema: {
        tags: JOBS,
        summary: 'Start a report job for a submission (state "started", progress 0)',
        security: SECURITY,
        params: idParams,
        body: newJobBody,
        response: responses({ 201: formsRef('Job') }, [...COMMON_ERRORS, 404, 413, 415]),
      },
      preValidation: async (request) => {
        if (request.body === undefined || request.body === null) request.body = {};
      },
    },
    async (request, reply) => {
      const job = await store.jobs.create(actorOf(request), request.params.id, request.body?.meta);
      reply.code(201).header('location', `/v1/jobs/${encodeURIComponent(job.id)}`);
      return job;
    },
  );

  app.get<{ Params: { id: string } }>(
    '/jobs/:id',
    {
      schema: {
        tags: JOBS,
        summary: "A job's status: state, progress and results (the frontends' polling route)",
        description: 'Poll until `state` is `done` or `failed`; `results` is what the report worker stored, `error` the failure.',
        security: SECURITY,
        params: idParams,
        response: responses({ 200: formsRef('Job') }, [...COMMON_ERRORS, 404]),
      },
    },
    async (request) => store.jobs.get(actorOf(request, { worker: true }), request.params.id),
  );

  const transition = <B>(
    path: string,
    summary: string,
    body: object | undefined,
    run: (actor: Actor, id: string, body: B) => Promise<unknown>,
  ) =>
    app.post<{ Params: { id: string }; Body: B }>(
      `/jobs/:id/${path}`,
      {
        schema: {
          tags: JOBS,
          summary,
          description:
            'For report workers: a token with the `jobs:write` scope, or the admin role. started → running → done | failed; anything else is 409.',
          security: SECURITY,
          params: idParams,
          ...(body ? { body } : {}),
          response: responses({ 200: formsRef('Job') }, [...COMMON_ERRORS, 403, 404, 409, 413, 415]),
        },
        preValidation: async (request) => {
          if (!body && (request.body === undefined || request.body === null)) request.body = {} as B;
        },
      },
      async (request) => run(workerOf(request), request.params.id, request.body as B),
    );

  transition('start', 'Start a job (started → running)', undefined, (actor, id) => store.jobs.start(actor, id));
  transition<{ progress: number }>('progress', "Report a job's progress (0-100, never lower)", progressBody, (actor, id, b) =>
    store.jobs.progress(actor, id, b.progress),
  );
  transition<{ results: unknown }>('finish', 'Finish a job with its results (→ done)', finishBody, (actor, id, b) =>
    store.jobs.finish(actor, id, b.results),
  );
  transition<{ error: string }>('fail', 'Fail a job (→ failed)', failBody, (actor, id, b) => store.jobs.fail(actor, id, b.error));

  app.get<{ Querystring: AuditListOptions }>(
    '/audit',
    {
      schema: {
        tags: ['admin'],
        summary: 'The audit log, newest first (admin)',
        security: SECURITY,
        querystring: auditListQuery,
        response: responses({ 200: formsRef('AuditPage') }, [...COMMON_ERRORS, 403]),
      },
      preHandler: async (request) => {
        if (!request.principal.admin) throw new PgFerryError('FORBIDDEN', 'this route needs the admin role');
      },
    },
    async (request) => store.audit.list(request.query),
  );
}
