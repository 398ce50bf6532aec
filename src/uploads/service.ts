import type { Readable } from 'node:stream';
import type { Config } from '../config.ts';
import type { Upload, UploadType } from '../domain/uploads.ts';
import { PgFerryError } from '../errors.ts';
import { type Logger, silentLogger } from '../log.ts';
import { digestObject, tooLarge } from '../objects/digest.ts';
import { defaultObjectStorageName, openObjectStorage } from '../objects/index.ts';
import { newObjectKey, type ObjectStorage, type ObjectStorageName, SHA256_HEX } from '../objects/types.ts';
import type { Store } from '../store/types.ts';

/**
 * Uploads end to end (issue 11, DESIGN section 7): bytes into object
 * storage, then metadata into the Store — in that order, so a row never
 * points at bytes that are not there:
 *
 * - `upload`: stream → put (size limit, sha256 on the way) → record. A
 *   stream that fails or is too large leaves no object (the drivers clean
 *   up) and no row; a record that fails deletes the object it just stored.
 * - `delete`: mark the row, then delete the bytes after that commit. A
 *   failed byte deletion leaves an orphan for `pgferry files reconcile`,
 *   never a row pointing at nothing.
 * - `presign` / `complete`: a pending row holds the key a client PUTs to
 *   directly; `complete` reads the object back, checks size and hash, and
 *   only then makes the row active.
 */

export interface UploadLimits {
  maxBytes: number;
  contentTypes: readonly string[];
}

export interface UploadMetadata {
  filename: string;
  contentType: string;
  docType?: string;
  uploadType?: UploadType;
}

/** The object storages a service reads from (rows name theirs) and the one new uploads go to. */
export class ObjectStores {
  readonly #opened = new Map<ObjectStorageName, ObjectStorage>();
  readonly #config: Config | undefined;
  readonly primary: ObjectStorage;

  constructor(primary: ObjectStorage, config?: Config, others: ObjectStorage[] = []) {
    this.primary = primary;
    this.#config = config;
    for (const storage of [primary, ...others]) this.#opened.set(storage.name, storage);
  }

  static fromConfig(config: Config): ObjectStores {
    return new ObjectStores(openObjectStorage(config, defaultObjectStorageName(config)), config);
  }

  /** The driver a row's `storage` names; opened on first use (rows moved by `files move` may live in the other store). */
  byName(name: string): ObjectStorage {
    const opened = this.#opened.get(name as ObjectStorageName);
    if (opened) return opened;
    if ((name === 'local' || name === 's3') && this.#config) {
      const storage = openObjectStorage(this.#config, name);
      this.#opened.set(name, storage);
      return storage;
    }
    throw new PgFerryError('NOT_FOUND', `the upload's bytes are in "${name}" storage, which this server cannot read`);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#opened.values()].map((storage) => storage.close()));
  }
}

/** The media type without parameters, lower-cased: `Image/PNG; x=1` → `image/png`. */
export function bareMediaType(value: string | undefined): string {
  return (value ?? '').split(';', 1)[0]!.trim().toLowerCase();
}

export class UploadService {
  readonly store: Store;
  readonly objects: ObjectStores;
  readonly limits: UploadLimits;
  readonly logger: Logger;

  constructor(options: { store: Store; objects: ObjectStores; limits: UploadLimits; logger?: Logger }) {
    this.store = options.store;
    this.objects = options.objects;
    this.limits = options.limits;
    this.logger = options.logger ?? silentLogger;
  }

  /** 415 unless the (declared) media type is on the allow-list; the stored type is the bare one. */
  checkContentType(contentType: string | undefined): string {
    const bare = bareMediaType(contentType);
    if (!this.limits.contentTypes.includes(bare)) {
      throw new PgFerryError(
        'UNSUPPORTED_MEDIA_TYPE',
        `content type ${JSON.stringify(bare.slice(0, 100) || '(none)')} is not accepted for uploads; accepted: ${this.limits.contentTypes.join(', ')}`,
      );
    }
    return bare;
  }

  checkDeclaredSize(size: number | undefined): void {
    if (size !== undefined && size > this.limits.maxBytes) throw tooLarge(this.limits.maxBytes);
  }

  /** Stream `body` into the primary storage under a fresh key, then record the row. */
  async upload(userId: string, body: Readable, metadata: UploadMetadata): Promise<Upload> {
    const contentType = this.checkContentType(metadata.contentType);
    const storage = this.objects.primary;
    const key = newObjectKey();
    const stored = await storage.put(key, body, { maxBytes: this.limits.maxBytes, contentType });
    try {
      return await this.store.uploads.record(userId, {
        filename: metadata.filename,
        storage: storage.name,
        bucket: bucketOf(storage),
        key,
        contentType,
        size: stored.size,
        sha256: stored.sha256,
        docType: metadata.docType,
        uploadType: metadata.uploadType,
      });
    } catch (error) {
      await this.#deleteBytes(storage, key, 'record failed');
      throw error;
    }
  }

  /** The bytes of the user's upload: a stream, or a presigned URL when the storage has them (S3). */
  async content(
    userId: string,
    id: string,
    options: { preferRedirect: boolean },
  ): Promise<{ upload: Upload; redirect: string } | { upload: Upload; stream: Readable }> {
    const upload = await this.store.uploads.get(userId, id);
    if (upload.status !== 'active' || upload.key === null || upload.storage === 'external') {
      throw new PgFerryError('NOT_FOUND', `upload ${JSON.stringify(id)} has no stored bytes`);
    }
    const storage = this.objects.byName(upload.storage);
    if (options.preferRedirect) {
      const url = await storage.presignGet(upload.key, { filename: upload.filename, contentType: upload.contentType ?? undefined });
      if (url !== undefined) return { upload, redirect: url };
    }
    return { upload, stream: await storage.get(upload.key) };
  }

  /** Mark deleted (committed), then remove the bytes. */
  async delete(userId: string, id: string): Promise<void> {
    const deleted = await this.store.uploads.delete(userId, id);
    if (deleted.key !== null && deleted.storage !== 'external') {
      await this.#deleteBytes(this.objects.byName(deleted.storage), deleted.key, 'upload deleted');
    }
  }

  /** A pending row and a URL to PUT the bytes to directly (S3 only). */
  async presign(
    userId: string,
    metadata: UploadMetadata & { size?: number },
  ): Promise<{ upload: Upload; url: string; method: 'PUT'; headers: Record<string, string>; expiresAt: string }> {
    const contentType = this.checkContentType(metadata.contentType);
    this.checkDeclaredSize(metadata.size);
    const storage = this.objects.primary;
    const key = newObjectKey();
    const expiresSeconds = 15 * 60;
    const url = await storage.presignPut(key, { contentType, expiresSeconds });
    if (url === undefined) {
      throw new PgFerryError('UNPROCESSABLE', `direct uploads need S3 object storage (this server stores files in "${storage.name}")`);
    }
    const upload = await this.store.uploads.record(userId, {
      filename: metadata.filename,
      storage: storage.name,
      bucket: bucketOf(storage),
      key,
      contentType,
      size: 0,
      status: 'pending',
      docType: metadata.docType,
      uploadType: metadata.uploadType,
    });
    return {
      upload,
      url,
      method: 'PUT',
      headers: { 'content-type': contentType },
      expiresAt: new Date(Date.now() + expiresSeconds * 1000).toISOString(),
    };
  }

  /**
   * The client says its PUT is done: read the object back, check it against
   * the limit and what the client claims, then activate the row. Bytes that
   * fail a check are deleted; the row stays pending (a retry PUT can fix it).
   */
  async complete(userId: string, id: string, claimed: { size?: number; sha256?: string }): Promise<Upload> {
    const upload = await this.store.uploads.get(userId, id);
    if (upload.status !== 'pending' || upload.key === null)
      throw new PgFerryError('NOT_FOUND', `upload ${JSON.stringify(id)} is not pending`);
    if (claimed.sha256 !== undefined && !SHA256_HEX.test(claimed.sha256)) {
      throw new PgFerryError('INVALID_INPUT', 'sha256: expected 64 lower-case hex digits', { field: 'sha256' });
    }
    const storage = this.objects.byName(upload.storage);
    const head = await storage.head(upload.key);
    if (head === undefined) throw new PgFerryError('CONFLICT', 'nothing was uploaded to the presigned URL yet');
    if (head.size > this.limits.maxBytes) {
      await this.#deleteBytes(storage, upload.key, 'presigned upload too large');
      throw tooLarge(this.limits.maxBytes);
    }
    const actual = await digestObject(storage, upload.key);
    const mismatch =
      (claimed.size !== undefined && claimed.size !== actual.size) || (claimed.sha256 !== undefined && claimed.sha256 !== actual.sha256);
    if (mismatch) {
      await this.#deleteBytes(storage, upload.key, 'presigned upload does not match');
      throw new PgFerryError('CONFLICT', 'the uploaded bytes do not match the size or sha256 given; upload again', {
        size: actual.size,
        sha256: actual.sha256,
      });
    }
    return this.store.uploads.complete(userId, id, actual);
  }

  async #deleteBytes(storage: ObjectStorage, key: string, reason: string): Promise<void> {
    try {
      await storage.delete(key);
    } catch (error) {
      // Left for `pgferry files reconcile`: an orphan object is harmless, a row without bytes is not.
      this.logger.warn({ storage: storage.name, key, reason, err: error }, 'could not delete upload bytes; reconcile will find the orphan');
    }
  }
}

function bucketOf(storage: ObjectStorage): string | null {
  return 'bucket' in storage && typeof storage.bucket === 'string' ? storage.bucket : null;
}
