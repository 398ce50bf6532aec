import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type * as ClientS3 from '@aws-sdk/client-s3';
import type { ListObjectsV2CommandOutput, S3Client } from '@aws-sdk/client-s3';
import type * as LibStorage from '@aws-sdk/lib-storage';
import type * as Presigner from '@aws-sdk/s3-request-presigner';
import { PgFerryError } from '../errors.ts';
import { checkExpected, DigestStream } from './digest.ts';
import { contentDisposition } from './disposition.ts';
import {
  DEFAULT_PRESIGN_SECONDS,
  type ListedObject,
  type ObjectHead,
  type ObjectStorage,
  type PresignGetOptions,
  type PresignPutOptions,
  type PutOptions,
  SHA256_HEX,
  type StoredObject,
  validateObjectKey,
  validateObjectPrefix,
} from './types.ts';

/** The S3 settings of config.s3 (seed 004's variable names: S3_BUCKET_NAME, AWS_REGION, AWS_*_KEY*, S3_ENDPOINT). */
export interface S3Settings {
  bucket: string | undefined;
  region: string | undefined;
  accessKeyId: string | undefined;
  secretAccessKey: string | undefined;
  endpoint: string | undefined;
}

/** Parts of a multipart upload: 8 MiB (S3's minimum is 5 MiB); at most this many parts in flight per object. */
const PART_SIZE = 8 * 1024 * 1024;
const PART_CONCURRENCY = 4;

/**
 * The AWS SDK, loaded on first use: it takes ~1.5 s to import, which every
 * `pgferry serve` and CLI start would pay even on local storage. The
 * packages ship CommonJS, so a synchronous require keeps the driver's
 * constructor synchronous.
 */
interface Sdk {
  s3: typeof ClientS3;
  storage: typeof LibStorage;
  presigner: typeof Presigner;
}
let sdk: Sdk | undefined;
function loadSdk(): Sdk {
  if (!sdk) {
    const require = createRequire(import.meta.url);
    sdk = {
      s3: require('@aws-sdk/client-s3') as typeof ClientS3,
      storage: require('@aws-sdk/lib-storage') as typeof LibStorage,
      presigner: require('@aws-sdk/s3-request-presigner') as typeof Presigner,
    };
  }
  return sdk;
}

/** Object metadata key holding the sha256 pgferry computed (x-amz-meta-sha256). */
const SHA256_METADATA = 'sha256';

/**
 * Objects in an S3 bucket, on AWS or any S3-compatible endpoint (S3_ENDPOINT,
 * then addressed path-style, as MinIO, Ceph and s3rver expect).
 *
 * Uploads stream through lib-storage's Upload (multipart past one part), so
 * an object of any size is never held in memory whole; sha256 and size are
 * computed on the way. The SDK's own flexible checksums are set to
 * WHEN_REQUIRED: pgferry checks sha256 itself, and many S3-compatible servers
 * reject or mangle the CRC trailers the SDK sends by default
 * (docs/decisions.md).
 */
export class S3ObjectStorage implements ObjectStorage {
  readonly name = 's3' as const;
  readonly bucket: string;
  readonly client: S3Client;
  readonly #sdk: Sdk;

  constructor(settings: S3Settings) {
    if (!settings.bucket) {
      throw new PgFerryError('CONFIG_ERROR', 'S3_BUCKET_NAME: expected a bucket name for the s3 object storage, got nothing', {
        variable: 'S3_BUCKET_NAME',
      });
    }
    this.bucket = settings.bucket;
    this.#sdk = loadSdk();
    const credentials =
      settings.accessKeyId && settings.secretAccessKey
        ? { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey }
        : undefined; // else the SDK's default chain (instance role, profile, …)
    this.client = new this.#sdk.s3.S3Client({
      region: settings.region ?? 'us-east-1',
      ...(settings.endpoint ? { endpoint: settings.endpoint, forcePathStyle: true } : {}),
      ...(credentials ? { credentials } : {}),
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 3,
    });
  }

  async put(key: string, body: Readable | AsyncIterable<Uint8Array>, options: PutOptions = {}): Promise<StoredObject> {
    validateObjectKey(key);
    const digest = new DigestStream(options.maxBytes);
    // Settled into a value at once: it may fail while upload.done() is still pending (unhandled otherwise).
    const flowing = pipeline(body, digest).then(
      () => undefined,
      (error: unknown) => error,
    );
    const upload = new this.#sdk.storage.Upload({
      client: this.client,
      params: {
        Bucket: this.bucket,
        Key: key,
        Body: digest,
        ContentType: options.contentType,
        // Known up front (a move): stored with the object so head() can report it without reading.
        Metadata:
          options.expectedSha256 && SHA256_HEX.test(options.expectedSha256) ? { [SHA256_METADATA]: options.expectedSha256 } : undefined,
      },
      partSize: PART_SIZE,
      queueSize: PART_CONCURRENCY,
      leavePartsOnError: false, // a failed multipart upload is aborted: no parts left to pay for
    });
    let uploadError: unknown;
    try {
      await upload.done();
    } catch (error) {
      uploadError = error;
      digest.destroy(); // stop reading the client: nobody consumes the stream any more
    }
    const flowError = await flowing;
    // The body's own failure (too large, client gone) explains an upload failure better than the SDK's echo of it.
    if (flowError !== undefined) {
      if (uploadError === undefined) await this.delete(key).catch(() => undefined);
      throw flowError instanceof PgFerryError ? flowError : new PgFerryError('INVALID_INPUT', `upload body failed: ${message(flowError)}`);
    }
    if (uploadError !== undefined) throw this.#failure('put', key, uploadError);
    const stored = { key, size: digest.bytesSeen, sha256: digest.sha256() };
    try {
      checkExpected(stored, options);
    } catch (error) {
      await this.delete(key).catch(() => undefined);
      throw error;
    }
    return stored;
  }

  async get(key: string): Promise<Readable> {
    validateObjectKey(key);
    try {
      const response = await this.client.send(new this.#sdk.s3.GetObjectCommand({ Bucket: this.bucket, Key: key }));
      const body = response.Body;
      if (body instanceof Readable) return body;
      if (body === undefined) return Readable.from([]);
      return Readable.fromWeb(body.transformToWebStream() as import('node:stream/web').ReadableStream);
    } catch (error) {
      if (isMissing(error)) throw missing(key);
      throw this.#failure('get', key, error);
    }
  }

  async head(key: string): Promise<ObjectHead | undefined> {
    validateObjectKey(key);
    try {
      const response = await this.client.send(new this.#sdk.s3.HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      const sha256 = response.Metadata?.[SHA256_METADATA];
      return {
        size: response.ContentLength ?? 0,
        modifiedAt: response.LastModified ?? new Date(0),
        ...(sha256 && SHA256_HEX.test(sha256) ? { sha256 } : {}),
      };
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw this.#failure('head', key, error);
    }
  }

  async delete(key: string): Promise<void> {
    validateObjectKey(key);
    try {
      await this.client.send(new this.#sdk.s3.DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (error) {
      if (isMissing(error)) return;
      throw this.#failure('delete', key, error);
    }
  }

  async *list(prefix = ''): AsyncIterable<ListedObject> {
    validateObjectPrefix(prefix);
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.client.send(
          new this.#sdk.s3.ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix || undefined, ContinuationToken: token }),
        );
      } catch (error) {
        throw this.#failure('list', prefix, error);
      }
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined) continue;
        yield { key: object.Key, size: object.Size ?? 0, modifiedAt: object.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async presignGet(key: string, options: PresignGetOptions = {}): Promise<string> {
    validateObjectKey(key);
    const command = new this.#sdk.s3.GetObjectCommand({
      Bucket: this.bucket,
      Key: key,
      ResponseContentDisposition: options.filename === undefined ? undefined : contentDisposition(options.filename),
      ResponseContentType: options.contentType,
    });
    return this.#sdk.presigner.getSignedUrl(this.client, command, { expiresIn: options.expiresSeconds ?? DEFAULT_PRESIGN_SECONDS });
  }

  async presignPut(key: string, options: PresignPutOptions = {}): Promise<string> {
    validateObjectKey(key);
    const command = new this.#sdk.s3.PutObjectCommand({ Bucket: this.bucket, Key: key, ContentType: options.contentType });
    return this.#sdk.presigner.getSignedUrl(this.client, command, { expiresIn: options.expiresSeconds ?? DEFAULT_PRESIGN_SECONDS });
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  /** S3 failing (down, refusing, throttling): UNAVAILABLE naming bucket and key, never credentials. */
  #failure(action: string, key: string, error: unknown): PgFerryError {
    const status = error instanceof this.#sdk.s3.S3ServiceException ? ` (HTTP ${error.$metadata.httpStatusCode ?? '?'})` : '';
    return new PgFerryError(
      'UNAVAILABLE',
      `s3 ${action} s3://${this.bucket}/${key} failed${status}: ${message(error)}`,
      { bucket: this.bucket, key },
      { cause: error },
    );
  }
}

function isMissing(error: unknown): boolean {
  if (!(error instanceof Error) || error.name === 'NoSuchBucket') return false;
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return error.name === 'NoSuchKey' || error.name === 'NotFound' || status === 404;
}

function missing(key: string): PgFerryError {
  return new PgFerryError('NOT_FOUND', `object ${JSON.stringify(key)} not found`, { key });
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
