import { LocalObjectStorage } from '../../objects/local.ts';
import type { ObjectStorage, ObjectStorageName } from '../../objects/types.ts';

/**
 * An object storage driver (src/objects/) as the uploads rows name it: the
 * mover, reconcile and the upload-store link select and switch rows by
 * `storage` and `bucket`, and write `url`.
 */
export interface ObjectStore {
  /** `uploads.storage` of rows whose bytes are here. */
  readonly kind: ObjectStorageName;
  /** `uploads.bucket` of rows whose bytes are here (null for local). */
  readonly bucket: string | null;
  readonly storage: ObjectStorage;
  /** `uploads.url` for a key here (null for local: the service streams local bytes itself). */
  urlOf(key: string): string | null;
}

/** DATA_DIR/files. */
export function localStore(dataDir: string): ObjectStore {
  return { kind: 'local', bucket: null, storage: LocalObjectStorage.forDataDir(dataDir), urlOf: () => null };
}
