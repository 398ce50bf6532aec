import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { UPLOAD_TYPES, type UploadType, validateUploadId } from '../../domain/uploads.ts';
import { invalidInput, PgFerryError } from '../../errors.ts';
import { tooLarge } from '../../objects/digest.ts';
import { contentDisposition } from '../../objects/disposition.ts';
import type { UploadService } from '../../uploads/service.ts';
import { COMMON_ERRORS, responses, SECURITY } from '../schemas.ts';

/**
 * Uploads of the calling user (issue 11): multipart upload streamed into
 * object storage, metadata, content (streamed, or a redirect to a presigned
 * S3 URL), delete, and direct-to-S3 presigned PUT + complete. Another
 * user's upload is 404, as everywhere.
 */

const TAGS = ['uploads'];

/** Multipart overhead allowed on top of the file limit before Content-Length alone refuses a request. */
const MULTIPART_OVERHEAD_BYTES = 64 * 1024;

const uploadQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    docType: { type: 'string', maxLength: 100 },
    uploadType: { type: 'string', enum: [...UPLOAD_TYPES] },
  },
} as const;

const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    docType: { type: 'string', maxLength: 100 },
    uploadType: { type: 'string', enum: [...UPLOAD_TYPES] },
    since: { type: 'string', maxLength: 40 },
    limit: { type: 'integer', minimum: 1, maximum: 100 },
    cursor: { type: 'string', maxLength: 512 },
  },
} as const;

const idParams = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id: { type: 'string', maxLength: 64 } },
} as const;

const presignBody = {
  type: 'object',
  required: ['filename', 'contentType'],
  additionalProperties: false,
  properties: {
    filename: { type: 'string', minLength: 1, maxLength: 16384 },
    contentType: { type: 'string', minLength: 1, maxLength: 255 },
    size: { type: 'integer', minimum: 0 },
    docType: { type: 'string', maxLength: 100 },
    uploadType: { type: 'string', enum: [...UPLOAD_TYPES] },
  },
} as const;

const completeBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    size: { type: 'integer', minimum: 0 },
    sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
  },
} as const;

type UploadQuery = { docType?: string; uploadType?: UploadType };

export async function uploadRoutes(app: FastifyInstance, service: UploadService): Promise<void> {
  const { maxBytes } = service.limits;
  await app.register(multipart, {
    // One file per request; fields are small. busboy's own file limit sits one byte past ours so ours decides (413).
    limits: { files: 1, fields: 10, fieldSize: 1024, parts: 12, fileSize: maxBytes + 1, headerPairs: 100 },
  });
  const userOf = (request: FastifyRequest) => request.principal.userId;

  app.post<{ Querystring: UploadQuery }>(
    '/uploads',
    {
      schema: {
        tags: TAGS,
        summary: 'Upload a file (multipart/form-data, one file part)',
        description: `Streamed into object storage with sha256 computed on the way; at most UPLOAD_MAX_BYTES (413) and only the types of UPLOAD_CONTENT_TYPES (415). The row exists only once the bytes are stored.`,
        security: SECURITY,
        querystring: uploadQuery,
        response: responses({ 201: {} }, [...COMMON_ERRORS, 413, 415]),
      },
    },
    async (request, reply) => {
      if (!request.isMultipart()) {
        throw new PgFerryError('UNSUPPORTED_MEDIA_TYPE', 'send the file as multipart/form-data with one file part');
      }
      const declared = Number(request.headers['content-length']);
      if (Number.isFinite(declared) && declared > maxBytes + MULTIPART_OVERHEAD_BYTES) throw tooLarge(maxBytes);
      const part = await request.file();
      if (!part) throw invalidInput('the multipart body has no file part', { field: 'file' });
      // A client gone mid-upload: fail the stream, so the driver drops its partial object.
      const onClose = () => {
        if (!request.raw.complete) part.file.destroy(new Error('the client disconnected during the upload'));
      };
      request.raw.once('close', onClose);
      try {
        service.checkContentType(part.mimetype); // before reading a byte of the file
        const upload = await service.upload(userOf(request), part.file, {
          filename: part.filename,
          contentType: part.mimetype,
          docType: request.query.docType,
          uploadType: request.query.uploadType,
        });
        reply.code(201).header('location', `/v1/uploads/${upload.id}`);
        return upload;
      } catch (error) {
        part.file.resume(); // discard what is left, so the answer can be read by the client
        throw error;
      } finally {
        request.raw.off('close', onClose);
      }
    },
  );

  app.get<{ Querystring: UploadQuery & { since?: string; limit?: number; cursor?: string } }>(
    '/uploads',
    {
      schema: {
        tags: TAGS,
        summary: "The caller's uploads, newest first",
        security: SECURITY,
        querystring: listQuery,
        response: responses({ 200: {} }, COMMON_ERRORS),
      },
    },
    async (request) => service.store.uploads.list(userOf(request), request.query),
  );

  app.get<{ Params: { id: string } }>(
    '/uploads/:id',
    {
      schema: {
        tags: TAGS,
        summary: "An upload's metadata",
        security: SECURITY,
        params: idParams,
        response: responses({ 200: {} }, [...COMMON_ERRORS, 404]),
      },
    },
    async (request) => service.store.uploads.get(userOf(request), validateUploadId(request.params.id)),
  );

  app.get<{ Params: { id: string }; Querystring: { redirect?: string } }>(
    '/uploads/:id/content',
    {
      schema: {
        tags: TAGS,
        summary: "An upload's bytes",
        description: 'Streamed as an attachment; on S3 a 302 to a presigned URL unless `redirect=false`.',
        security: SECURITY,
        params: idParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { redirect: { type: 'string', enum: ['true', 'false'] } },
        },
      },
    },
    async (request, reply) => {
      const found = await service.content(userOf(request), validateUploadId(request.params.id), {
        preferRedirect: request.query.redirect !== 'false',
      });
      if ('redirect' in found) return reply.code(302).header('location', found.redirect).header('cache-control', 'no-store').send();
      const { upload, stream } = found;
      return reply
        .header('content-type', upload.contentType ?? 'application/octet-stream')
        .header('content-length', String(upload.size))
        .header('content-disposition', contentDisposition(upload.filename))
        .header('x-content-type-options', 'nosniff')
        .header('content-security-policy', "default-src 'none'; sandbox")
        .header('cache-control', 'private, no-store')
        .send(stream);
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/uploads/:id',
    {
      schema: {
        tags: TAGS,
        summary: 'Delete an upload (row marked, then bytes removed)',
        security: SECURITY,
        params: idParams,
        response: responses({ 204: {} }, [...COMMON_ERRORS, 404]),
      },
    },
    async (request, reply) => {
      await service.delete(userOf(request), validateUploadId(request.params.id));
      return reply.code(204).send();
    },
  );

  app.post<{ Body: { filename: string; contentType: string; size?: number; docType?: string; uploadType?: UploadType } }>(
    '/uploads/presign',
    {
      schema: {
        tags: TAGS,
        summary: 'Start a direct upload to S3 (presigned PUT)',
        description: 'Creates a pending upload and a URL to PUT the bytes to; then call `POST /v1/uploads/{id}/complete`.',
        security: SECURITY,
        body: presignBody,
        response: responses({ 201: {} }, [...COMMON_ERRORS, 413, 415, 422]),
      },
    },
    async (request, reply) => {
      const started = await service.presign(userOf(request), request.body);
      reply.code(201).header('location', `/v1/uploads/${started.upload.id}`);
      return started;
    },
  );

  app.post<{ Params: { id: string }; Body: { size?: number; sha256?: string } | undefined }>(
    '/uploads/:id/complete',
    {
      schema: {
        tags: TAGS,
        summary: 'Finish a direct upload: the bytes are read back and checked (size, sha256, limit)',
        security: SECURITY,
        params: idParams,
        body: completeBody,
        response: responses({ 200: {} }, [...COMMON_ERRORS, 404, 409, 413]),
      },
      preValidation: async (request) => {
        if (request.body === undefined || request.body === null) request.body = {};
      },
    },
    async (request) => service.complete(userOf(request), validateUploadId(request.params.id), request.body ?? {}),
  );
}
