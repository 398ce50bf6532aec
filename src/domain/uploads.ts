import { z } from 'zod';
import { invalidInput } from '../errors.ts';
import { isValidObjectKey, OBJECT_STORAGE_NAMES } from '../objects/types.ts';
import { assertCleanInput } from './clean-input.ts';

/**
 * Upload metadata (seed 000's Upload model, seed 004's user_uploads): one
 * row per uploaded file; the bytes live in object storage under `key`
 * (DESIGN sections 3 and 7). Filenames are what a user sent — hostile
 * input kept as metadata only, never used for a path or a key.
 */

export const UPLOAD_TYPES = ['avatar', 'document', 'image', 'report', 'ai-generated'] as const;
export type UploadType = (typeof UPLOAD_TYPES)[number];
export const UPLOAD_STORAGES = [...OBJECT_STORAGE_NAMES, 'external'] as const;
export type UploadStorage = (typeof UPLOAD_STORAGES)[number];
/** `pending`: a presigned upload not completed yet; `deleted`: marked, bytes removed after commit. */
export const UPLOAD_STATUSES = ['pending', 'active', 'deleted', 'failed'] as const;
export type UploadStatus = (typeof UPLOAD_STATUSES)[number];

export interface Upload {
  id: string;
  userId: string;
  /** Display name: the last segment of what was sent, without control/bidi characters, ≤ 255 characters. */
  filename: string;
  /** Exactly what was sent (bounded), or null. */
  originalFilename: string | null;
  storage: UploadStorage;
  bucket: string | null;
  /** The object's key; null when the entry has no bytes (seed 000's empty saved_path). */
  key: string | null;
  url: string | null;
  contentType: string | null;
  size: number;
  sha256: string | null;
  fingerprint: string | null;
  docType: string | null;
  uploadType: UploadType;
  standardsMapped: unknown;
  isPublic: boolean;
  status: UploadStatus;
  metadata: Record<string, unknown> | null;
  /** ISO 8601 UTC (ms). */
  uploadedAt: string;
  expiresAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export const MAX_FILENAME_LENGTH = 255;
/** Longer original names (10 KB names exist in the wild) are cut here: metadata, not a weapon. */
export const MAX_ORIGINAL_FILENAME_LENGTH = 4096;
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function validateUploadId(value: unknown): string {
  if (typeof value !== 'string' || !UUID_PATTERN.test(value)) {
    const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 64)) : typeof value;
    throw invalidInput(`invalid upload id ${shown} (expected a lower-case UUID)`, { field: 'id' });
  }
  return value;
}

/** The display name of a sent filename: last path segment, no control/bidi/NUL characters, bounded; "upload" when empty. */
export function displayFilename(sent: string): string {
  const last = sent.split(/[/\\]/).pop() ?? '';
  const cleaned = [...last.replace(/[\u0000-\u001f\u007f\u200e\u200f\u202a-\u202e\u2066-\u2069\uD800-\uDFFF]/gu, '')]
    .slice(0, MAX_FILENAME_LENGTH)
    .join('')
    .trim();
  return cleaned === '' || cleaned === '.' || cleaned === '..' ? 'upload' : cleaned;
}

/** What was sent, storable: NUL and lone surrogates replaced (PostgreSQL text cannot hold them), bounded. */
export function storableOriginal(sent: string): string {
  return [...sent.replace(/\u0000/g, '\uFFFD').replace(/[\uD800-\uDFFF]/gu, '\uFFFD')].slice(0, MAX_ORIGINAL_FILENAME_LENGTH).join('');
}

const isoInstant = z
  .string()
  .max(40)
  .refine((v) => !Number.isNaN(Date.parse(v)), 'an ISO 8601 instant');

export const uploadInputSchema = z
  .object({
    id: z.string().optional(),
    filename: z.string().max(64 * 1024),
    storage: z.enum(UPLOAD_STORAGES).default('local'),
    bucket: z.string().max(255).nullish(),
    key: z.string().refine(isValidObjectKey, 'a valid object key').nullish(),
    url: z.string().max(4096).nullish(),
    contentType: z.string().max(255).nullish(),
    size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
    sha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .nullish(),
    fingerprint: z.string().max(255).nullish(),
    docType: z.string().max(100).nullish(),
    uploadType: z.enum(UPLOAD_TYPES).default('document'),
    standardsMapped: z.unknown().optional(),
    isPublic: z.boolean().default(false),
    status: z.enum(['pending', 'active']).default('active'),
    metadata: z.record(z.string(), z.unknown()).nullish(),
    uploadedAt: isoInstant.optional(),
    expiresAt: isoInstant.nullish(),
  })
  .strict();

export type UploadInput = z.input<typeof uploadInputSchema>;

/** A validated row to store (timestamps filled by the backend when absent). */
export type NewUpload = Omit<Upload, 'userId' | 'status' | 'uploadedAt' | 'createdAt' | 'updatedAt'> & {
  status: 'pending' | 'active';
  uploadedAt: string | null;
};

export function validateUploadInput(input: unknown, newId: () => string): NewUpload {
  const parsed = uploadInputSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw invalidInput(`invalid upload: ${issue?.path.join('.') || 'input'}: ${issue?.message ?? 'invalid'}`, {
      field: issue?.path.join('.'),
    });
  }
  const value = parsed.data;
  assertCleanInput(value.standardsMapped ?? null, 'standardsMapped');
  assertCleanInput(value.metadata ?? null, 'metadata');
  for (const field of ['bucket', 'url', 'contentType', 'fingerprint', 'docType'] as const) {
    const text = value[field];
    if (typeof text === 'string') assertCleanInput(text, field);
  }
  return {
    id: value.id === undefined ? newId() : validateUploadId(value.id),
    filename: displayFilename(value.filename),
    originalFilename: storableOriginal(value.filename),
    storage: value.storage,
    bucket: value.bucket ?? null,
    key: value.key ?? null,
    url: value.url ?? null,
    contentType: value.contentType ?? null,
    size: value.size,
    sha256: value.sha256 ?? null,
    fingerprint: value.fingerprint ?? null,
    docType: value.docType ?? null,
    uploadType: value.uploadType,
    standardsMapped: value.standardsMapped ?? null,
    isPublic: value.isPublic,
    status: value.status,
    metadata: value.metadata ?? null,
    uploadedAt: value.uploadedAt === undefined ? null : new Date(value.uploadedAt).toISOString(),
    expiresAt: value.expiresAt == null ? null : new Date(value.expiresAt).toISOString(),
  };
}

export interface UploadListOptions {
  docType?: string;
  uploadType?: UploadType;
  /** Only uploads at or after this instant. */
  since?: string | Date;
  /** Default 50, maximum 100. */
  limit?: number;
  cursor?: string;
}

/** What `complete` (a presigned upload) sets once the bytes are checked. */
export interface UploadCompletion {
  size: number;
  sha256: string;
}
