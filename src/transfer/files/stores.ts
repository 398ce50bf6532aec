import type { Config } from '../../config.ts';
import { S3ObjectStorage } from '../../objects/s3.ts';
import type { ObjectStore } from './object-store.ts';

/**
 * The S3 store for the mover and reconcile: the S3 driver (src/objects/s3.ts)
 * with what a row says about it — `storage = 's3'`, the bucket, and the URL
 * seed 004's rows carry (`https://<bucket>.s3.<region>.amazonaws.com/<key>`,
 * or path-style under S3_ENDPOINT for other S3-compatible servers).
 */
export function s3Store(config: Config): ObjectStore {
  const storage = new S3ObjectStorage(config.s3);
  const bucket = storage.bucket;
  const endpoint = config.s3.endpoint?.replace(/\/+$/, '');
  const region = config.s3.region ?? 'us-east-1';
  return {
    kind: 's3',
    bucket,
    storage,
    urlOf: (key) => (endpoint ? `${endpoint}/${bucket}/${key}` : `https://${bucket}.s3.${region}.amazonaws.com/${key}`),
  };
}
