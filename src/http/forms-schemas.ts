import { MAX_LIST_LIMIT } from '../domain/conversations.ts';
import { JOB_STATES, SUBMISSION_STATUSES } from '../domain/forms.ts';
import { CURSOR, RECORD_ID, USER_ID } from './schemas.ts';

/**
 * JSON schemas of seed 002's routes (submissions, jobs, uploaded files,
 * audit). Like schemas.ts: the same objects validate requests and generate
 * the OpenAPI document; the response shapes are components.schemas.
 */

const TIMESTAMP = { type: 'string', format: 'date-time' } as const;
const NULLABLE_TIMESTAMP = { type: ['string', 'null'], format: 'date-time' } as const;
const DATE = { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}$', description: 'YYYY-MM-DD' } as const;
const MODULE = {
  type: 'string',
  pattern: '^[a-z][a-z0-9_]{0,63}$',
  description: 'The form module: civil, hvac_mep, cleaning, or another lower-case word.',
} as const;
const ANY_OBJECT = { type: 'object', additionalProperties: true } as const;
const LIMIT = { type: 'integer', minimum: 1, maximum: MAX_LIST_LIMIT, description: `Default 50, maximum ${MAX_LIST_LIMIT}.` } as const;

export const idParams = { type: 'object', required: ['id'], additionalProperties: false, properties: { id: RECORD_ID } } as const;

export const createSubmissionBody = {
  type: 'object',
  required: ['module', 'formData'],
  additionalProperties: false,
  properties: {
    module: MODULE,
    formData: { ...ANY_OBJECT, description: 'The whole form document as the app posts it; site name and visit date are derived from it.' },
    status: { type: 'string', enum: [...SUBMISSION_STATUSES], description: 'Default pending.' },
    userId: {
      anyOf: [USER_ID, { type: 'null' }],
      description: 'Admins only: the owner (null = no user, visible to admins only). Default: the caller.',
    },
  },
} as const;

export const submissionListQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    module: MODULE,
    status: { type: 'string', enum: [...SUBMISSION_STATUSES] },
    visitDateFrom: { ...DATE, description: 'Inclusive.' },
    visitDateTo: { ...DATE, description: 'Inclusive.' },
    siteName: { type: 'string', minLength: 1, maxLength: 200, description: 'Case-insensitive substring.' },
    limit: LIMIT,
    cursor: CURSOR,
  },
} as const;

export const statusBody = {
  type: 'object',
  required: ['status'],
  additionalProperties: false,
  properties: { status: { type: 'string', enum: [...SUBMISSION_STATUSES] } },
} as const;

export const newFileBody = {
  type: 'object',
  required: ['url'],
  additionalProperties: false,
  properties: {
    url: { type: 'string', minLength: 1, maxLength: 4096 },
    field: { type: ['string', 'null'], maxLength: 200 },
    publicId: { type: ['string', 'null'], maxLength: 500 },
    fileType: { type: ['string', 'null'], maxLength: 50, description: 'photo, signature, report, …' },
    originalFilename: { type: ['string', 'null'], maxLength: 500 },
    fileSize: { type: ['integer', 'null'], minimum: 0 },
    isCloud: { type: 'boolean' },
  },
} as const;

export const newJobBody = {
  type: 'object',
  additionalProperties: false,
  properties: { meta: { ...ANY_OBJECT, description: "Kept as the job's meta; `submission_id` and `module` are set by the server." } },
} as const;

export const progressBody = {
  type: 'object',
  required: ['progress'],
  additionalProperties: false,
  properties: { progress: { type: 'integer', minimum: 0, maximum: 100 } },
} as const;

export const finishBody = {
  type: 'object',
  required: ['results'],
  additionalProperties: false,
  properties: {
    results: { description: 'What the frontends read: a list of {filename, url}, {excel, pdf} or {excel_url, pdf_url}.' },
  },
} as const;

export const failBody = {
  type: 'object',
  required: ['error'],
  additionalProperties: false,
  properties: { error: { type: 'string', minLength: 1, maxLength: 10_000 } },
} as const;

export const auditListQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    userId: { type: 'string', minLength: 1, maxLength: 128 },
    action: { type: 'string', minLength: 1, maxLength: 128 },
    resourceType: { type: 'string', minLength: 1, maxLength: 128 },
    resourceId: { type: 'string', minLength: 1, maxLength: 128 },
    from: { ...TIMESTAMP, description: 'Inclusive.' },
    to: { ...TIMESTAMP, description: 'Exclusive.' },
    limit: LIMIT,
    cursor: CURSOR,
  },
} as const;

export const FORMS_SCHEMAS = [
  {
    $id: 'Submission',
    type: 'object',
    required: ['id', 'userId', 'module', 'status', 'siteName', 'visitDate', 'formData', 'createdAt', 'updatedAt'],
    properties: {
      id: { type: 'string' },
      userId: { type: ['string', 'null'] },
      module: { type: 'string' },
      status: { type: 'string', enum: [...SUBMISSION_STATUSES] },
      siteName: { type: ['string', 'null'] },
      visitDate: { type: ['string', 'null'] },
      formData: ANY_OBJECT,
      createdAt: TIMESTAMP,
      updatedAt: TIMESTAMP,
    },
  },
  {
    $id: 'SubmissionPage',
    type: 'object',
    required: ['items', 'nextCursor'],
    properties: { items: { type: 'array', items: { $ref: 'Submission#' } }, nextCursor: { type: ['string', 'null'] } },
  },
  {
    $id: 'Job',
    type: 'object',
    description: "A report job; the app's frontends poll it until `state` is done or failed.",
    required: ['id', 'submissionId', 'state', 'progress', 'results', 'error', 'meta', 'createdAt', 'startedAt', 'completedAt', 'updatedAt'],
    properties: {
      id: { type: 'string' },
      submissionId: { type: ['string', 'null'] },
      state: { type: 'string', enum: [...JOB_STATES] },
      progress: { type: 'integer', minimum: 0, maximum: 100 },
      results: {},
      error: { type: ['string', 'null'] },
      meta: ANY_OBJECT,
      createdAt: TIMESTAMP,
      startedAt: NULLABLE_TIMESTAMP,
      completedAt: NULLABLE_TIMESTAMP,
      updatedAt: TIMESTAMP,
    },
  },
  {
    $id: 'UploadedFile',
    type: 'object',
    required: ['id', 'submissionId', 'url', 'isCloud', 'uploadedAt'],
    properties: {
      id: { type: 'string' },
      submissionId: { type: 'string' },
      field: { type: ['string', 'null'] },
      url: { type: 'string' },
      publicId: { type: ['string', 'null'] },
      fileType: { type: ['string', 'null'] },
      originalFilename: { type: ['string', 'null'] },
      fileSize: { type: ['integer', 'null'] },
      isCloud: { type: 'boolean' },
      uploadedAt: TIMESTAMP,
    },
  },
  {
    $id: 'AuditEntry',
    type: 'object',
    required: ['id', 'action', 'createdAt'],
    properties: {
      id: { type: 'string' },
      userId: { type: ['string', 'null'] },
      action: { type: 'string' },
      resourceType: { type: ['string', 'null'] },
      resourceId: { type: ['string', 'null'] },
      details: { type: ['object', 'null'], additionalProperties: true },
      ip: { type: ['string', 'null'] },
      userAgent: { type: ['string', 'null'] },
      createdAt: TIMESTAMP,
    },
  },
  {
    $id: 'AuditPage',
    type: 'object',
    required: ['items', 'nextCursor'],
    properties: { items: { type: 'array', items: { $ref: 'AuditEntry#' } }, nextCursor: { type: ['string', 'null'] } },
  },
] as const;

export const formsRef = (id: (typeof FORMS_SCHEMAS)[number]['$id']) => ({ $ref: `${id}#` });
