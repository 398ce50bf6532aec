import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { invalidInput } from '../errors.ts';

/**
 * Object storage: where upload bytes live (DESIGN section 7). One small
 * interface, two drivers — `local` (files under DATA_DIR/files) and `s3`
 * (any S3-compatible endpoint). Rows in PostgreSQL name an object by
 * (storage, key); the bytes never enter the database.
 *
 * Keys are chosen by pgferry, never by a client: a filename a user sent is
 * metadata only and never becomes part of a key or a path.
 */

export const OBJECT_STORAGE_NAMES = ['local', 's3'] as const;
export type ObjectStorageName = (typeof OBJECT_STORAGE_NAMES)[number];

/** What a completed `put` stored: the key, the byte count and the sha256 (hex) computed while streaming. */
export interface StoredObject {
  key: string;
  size: number;
  sha256: string;
}

/** An object's size, and its sha256 when the driver knows it without reading the bytes. */
export interface ObjectHead {
  size: number;
  sha256?: string;
  modifiedAt: Date;
}

/** One object seen by `list` (for reconcile and moves). */
export interface ListedObject {
  key: string;
  size: number;
  modifiedAt: Date;
}

export interface PutOptions {
  contentType?: string;
  /** More bytes than this → PAYLOAD_TOO_LARGE, and nothing is left stored. */
  maxBytes?: number;
  /** The caller knows the hash (a move): a mismatch → CONFLICT, and nothing is left stored. */
  expectedSha256?: string;
  /** The caller knows the size (a move, a `complete`): a mismatch → CONFLICT, and nothing is left stored. */
  expectedSize?: number;
}

export interface PresignGetOptions {
  expiresSeconds?: number;
  /** Served as Content-Disposition; metadata only, quoted safely by the driver. */
  filename?: string;
  contentType?: string;
}

export interface PresignPutOptions {
  expiresSeconds?: number;
  contentType?: string;
}

export interface ObjectStorage {
  readonly name: ObjectStorageName;
  /**
   * Stream `body` into the object `key`, computing size and sha256 on the
   * way. The object appears whole or not at all: a body that fails, is too
   * large or does not match leaves nothing behind.
   */
  put(key: string, body: Readable | AsyncIterable<Uint8Array>, options?: PutOptions): Promise<StoredObject>;
  /** The object's bytes as a stream; NOT_FOUND when absent. */
  get(key: string): Promise<Readable>;
  /** Size (and sha256 when known) or undefined when absent. */
  head(key: string): Promise<ObjectHead | undefined>;
  /** Remove the object; absent is fine. */
  delete(key: string): Promise<void>;
  /** Every object whose key starts with `prefix`, in no particular order. */
  list(prefix?: string): AsyncIterable<ListedObject>;
  /** A time-limited URL to read the object directly, or undefined when the driver has none (local). */
  presignGet(key: string, options?: PresignGetOptions): Promise<string | undefined>;
  /** A time-limited URL to PUT the object directly, or undefined when the driver has none (local). */
  presignPut(key: string, options?: PresignPutOptions): Promise<string | undefined>;
  /** Release connections; the driver is not used after. */
  close(): Promise<void>;
}

export const DEFAULT_PRESIGN_SECONDS = 15 * 60;

/**
 * A key: segments of [A-Za-z0-9._-] separated by '/', none empty, none
 * starting with '.' (so no '..' and no collision with temp files), at most
 * 512 characters. Safe as a relative path on every filesystem and as an
 * S3 key without escaping.
 */
export const OBJECT_KEY_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9._-]*(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$/;
export const MAX_OBJECT_KEY_LENGTH = 512;

export function isValidObjectKey(key: unknown): key is string {
  return typeof key === 'string' && key.length <= MAX_OBJECT_KEY_LENGTH && OBJECT_KEY_PATTERN.test(key);
}

export function validateObjectKey(key: unknown): string {
  if (!isValidObjectKey(key)) {
    const shown = typeof key === 'string' ? JSON.stringify(key.slice(0, 64)) : typeof key;
    throw invalidInput(`invalid object key ${shown} (expected /-separated segments of A-Za-z0-9._-, none starting with ".")`, {
      field: 'key',
    });
  }
  return key;
}

/** A `list` prefix: '' or characters of a key, with no '..' (it is joined to a path by the local driver). */
export function validateObjectPrefix(prefix: string): string {
  if (!/^[A-Za-z0-9._/-]*$/.test(prefix) || prefix.includes('..') || prefix.startsWith('/')) {
    throw invalidInput(`invalid object prefix ${JSON.stringify(prefix.slice(0, 64))}`, { field: 'prefix' });
  }
  return prefix;
}

/**
 * A new key for an upload: `uploads/<yyyy>/<mm>/<uuid>`. Random, so every
 * upload gets a fresh object (a retried or concurrent upload never
 * overwrites another) and a key reveals nothing about the user or filename.
 */
export function newObjectKey(prefix = 'uploads', now = new Date()): string {
  const year = String(now.getUTCFullYear());
  const month = String(now.getUTCMonth() + 1).padStart(2, '0');
  return `${prefix}/${year}/${month}/${randomUUID()}`;
}

export const SHA256_HEX = /^[0-9a-f]{64}$/;
