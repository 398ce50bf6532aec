import type { Config } from '../config.ts';
import { LocalObjectStorage } from './local.ts';
import { S3ObjectStorage } from './s3.ts';
import type { ObjectStorage, ObjectStorageName } from './types.ts';

export { digestObject, digestStream } from './digest.ts';
export { LocalObjectStorage } from './local.ts';
export { S3ObjectStorage } from './s3.ts';
export * from './types.ts';

/** Where new uploads go: S3 when S3_BUCKET_NAME is set, else local files (as describeConfig reports). */
export function defaultObjectStorageName(config: Config): ObjectStorageName {
  return config.s3.bucket ? 's3' : 'local';
}

/** One driver by name: `local` under DATA_DIR/files, `s3` from config.s3 (CONFIG_ERROR without a bucket). */
export function openObjectStorage(config: Config, name: ObjectStorageName = defaultObjectStorageName(config)): ObjectStorage {
  return name === 's3' ? new S3ObjectStorage(config.s3) : LocalObjectStorage.forDataDir(config.dataDir);
}
