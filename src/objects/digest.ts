import { createHash, type Hash } from 'node:crypto';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { formatBytes } from '../domain/limits.ts';
import { PgFerryError } from '../errors.ts';
import type { ObjectStorage, PutOptions, StoredObject } from './types.ts';

/**
 * Counts and hashes bytes as they stream through, and stops the stream the
 * moment it passes `maxBytes` — so an oversized upload is refused after
 * reading at most one chunk past the limit, never buffered whole.
 */
export class DigestStream extends Transform {
  /** Bytes seen so far. (Not `size`: lib-storage reads a Body's `size` as its total length.) */
  bytesSeen = 0;
  readonly #hash: Hash = createHash('sha256');
  readonly #maxBytes: number;

  constructor(maxBytes = Number.POSITIVE_INFINITY) {
    super();
    this.#maxBytes = maxBytes;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytesSeen += chunk.length;
    if (this.bytesSeen > this.#maxBytes) {
      callback(tooLarge(this.#maxBytes));
      return;
    }
    this.#hash.update(chunk);
    callback(null, chunk);
  }

  /** Hex sha256 of everything that passed; call once, after the stream ended. */
  sha256(): string {
    return this.#hash.digest('hex');
  }
}

export function tooLarge(maxBytes: number): PgFerryError {
  return new PgFerryError('PAYLOAD_TOO_LARGE', `the upload is larger than the limit of ${formatBytes(maxBytes)}`, {
    limitBytes: maxBytes,
  });
}

/** After a put: does what was stored match what the caller expected? CONFLICT when not (the driver then removes the object). */
export function checkExpected(stored: StoredObject, options: PutOptions): void {
  if (options.expectedSize !== undefined && stored.size !== options.expectedSize) {
    throw new PgFerryError('CONFLICT', `object ${stored.key}: expected ${options.expectedSize} bytes, got ${stored.size}`, {
      key: stored.key,
      expectedSize: options.expectedSize,
      size: stored.size,
    });
  }
  if (options.expectedSha256 !== undefined && stored.sha256 !== options.expectedSha256) {
    throw new PgFerryError('CONFLICT', `object ${stored.key}: sha256 differs from the expected one`, {
      key: stored.key,
      expectedSha256: options.expectedSha256,
      sha256: stored.sha256,
    });
  }
}

/** Size and sha256 of a stream, read to its end. */
export async function digestStream(body: Readable): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    hash.update(chunk as Buffer);
  }
  return { size, sha256: hash.digest('hex') };
}

/** Size and sha256 of a stored object, by reading its bytes (what a move or reconcile checks at the target). */
export async function digestObject(storage: ObjectStorage, key: string): Promise<{ size: number; sha256: string }> {
  return digestStream(await storage.get(key));
}
