import type { Config } from '../../config.ts';
import { PgFerryError } from '../../errors.ts';
import type { ObjectStore } from './object-store.ts';

/**
 * The S3 store for the mover and reconcile. It adapts the object storage
 * driver (src/objects/s3.ts, AWS SDK v3) to object-store.ts's interface.
 */
export async function s3Store(_config: Config): Promise<ObjectStore> {
  throw new PgFerryError('CONFIG_ERROR', 'the S3 object store driver is not part of this build yet');
}
