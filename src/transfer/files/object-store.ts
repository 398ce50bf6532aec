import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PgFerryError } from '../../errors.ts';
import { unsafeKeyReason } from '../../formats/uploads-store.ts';

/**
 * What the file mover, reconcile and the upload-store link need of an object
 * store: the few calls below, keyed by the row's file_key. Each store also
 * says how a row names it (`storage` and, for S3, the bucket and URL).
 * The object storage drivers (src/objects/) are adapted to this in
 * stores.ts; `LocalObjectStore` here is the mover's own view of a directory.
 */
export interface ObjectStore {
  /** `uploads.storage` of rows whose bytes are here: local | s3. */
  readonly kind: 'local' | 's3';
  /** `uploads.bucket` for rows here (null for local). */
  readonly bucket: string | null;
  /** `uploads.url` for a key here (null for local: the service streams local bytes itself). */
  urlOf(key: string): string | null;
  /** Size (and sha256 when the store keeps it) of an object, or null when there is none. */
  head(key: string): Promise<ObjectHead | null>;
  get(key: string): Promise<Readable>;
  /**
   * Store the bytes under `key`, atomically: a reader sees the old object or
   * the whole new one. A store that can checks the bytes against `expected`
   * and fails without replacing the object.
   */
  put(key: string, body: Readable, expected: ExpectedBytes): Promise<void>;
  delete(key: string): Promise<void>;
  /** Every object, in any order. */
  list(): AsyncIterable<ObjectListing>;
}

export interface ExpectedBytes {
  size?: number;
  sha256?: string;
}

export interface ObjectHead {
  size: number;
  sha256?: string;
}

export interface ObjectListing {
  key: string;
  size: number;
  modifiedMs: number;
}

/** The bytes' size and sha256, read from the store (what a move checks at the target). */
export async function measureObject(store: ObjectStore, key: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  const body = await store.get(key);
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    hash.update(chunk as Buffer);
  }
  return { size, sha256: hash.digest('hex') };
}

export function checkKey(key: string): string {
  const unsafe = unsafeKeyReason(key);
  if (unsafe) throw new PgFerryError('INVALID_INPUT', `object key ${unsafe}`);
  return key;
}

const TEMP_PREFIX = '.pgferry-tmp-';

/**
 * A directory of objects, one file per key (the key's `/` are directories).
 * Writes go to a temporary file in the same directory, fsynced, then renamed
 * over the key: the JSON backend's atomic-write rule.
 */
export class LocalObjectStore implements ObjectStore {
  readonly kind = 'local' as const;
  readonly bucket = null;
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  urlOf(_key: string): null {
    return null;
  }

  pathOf(key: string): string {
    return path.join(this.root, checkKey(key));
  }

  async head(key: string): Promise<ObjectHead | null> {
    try {
      const info = await stat(this.pathOf(key));
      return info.isFile() ? { size: info.size } : null;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
      throw error;
    }
  }

  async get(key: string): Promise<Readable> {
    const file = this.pathOf(key);
    const handle = await open(file, 'r'); // fails now (ENOENT) rather than on the first read
    return handle.createReadStream();
  }

  async put(key: string, body: Readable, expected: ExpectedBytes): Promise<void> {
    const file = this.pathOf(key);
    await mkdir(path.dirname(file), { recursive: true });
    const temp = path.join(path.dirname(file), `${TEMP_PREFIX}${randomBytes(6).toString('hex')}`);
    const hash = createHash('sha256');
    let size = 0;
    try {
      const out = createWriteStream(temp, { flush: true });
      await pipeline(
        body,
        async function* (source) {
          for await (const chunk of source) {
            size += (chunk as Buffer).length;
            hash.update(chunk as Buffer);
            yield chunk;
          }
        },
        out,
      );
      const sha256 = hash.digest('hex');
      if (size !== expected.size || sha256 !== expected.sha256)
        throw new PgFerryError(
          'CONFLICT',
          `object ${key}: received ${size} bytes (sha256 ${sha256.slice(0, 12)}…), expected ${expected.size}`,
        );
      await rename(temp, file);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathOf(key), { force: true });
  }

  async *list(): AsyncIterable<ObjectListing> {
    const walk = async function* (dir: string, prefix: string): AsyncGenerator<ObjectListing> {
      let entries: import('node:fs').Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw error;
      }
      for (const entry of entries) {
        if (entry.name.startsWith(TEMP_PREFIX)) continue;
        const abs = path.join(dir, entry.name);
        if (entry.isDirectory()) yield* walk(abs, `${prefix}${entry.name}/`);
        else if (entry.isFile()) {
          const info = await stat(abs);
          yield { key: `${prefix}${entry.name}`, size: info.size, modifiedMs: info.mtimeMs };
        }
      }
    };
    yield* walk(this.root, '');
  }
}
