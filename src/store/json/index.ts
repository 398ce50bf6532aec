import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { TierLimits } from '../../config.ts';
import { type Logger, silentLogger } from '../../log.ts';
import { createConversationRepository } from '../core/conversations.ts';
import { createFormsRepositories } from '../core/forms.ts';
import { createUploadRepository } from '../core/uploads.ts';
import { createUsageRepository } from '../core/usage.ts';
import { type Clock, type Store, type StoreHealth, systemClock } from '../types.ts';
import { createContext } from './context.ts';
import { createJsonConversations } from './conversations.ts';
import { ensureDir, removeFile, removeStaleTempFiles, writeJsonFileAtomic } from './files.ts';
import { jsonFormsBackends } from './forms.ts';
import { createJsonIdempotency } from './idempotency.ts';
import type { LockOptions } from './locks.ts';
import { createJsonUploads } from './uploads.ts';
import { createJsonUsage } from './usage.ts';

export interface JsonStoreOptions {
  /** Root of the seed app's data/ tree (DATA_DIR). */
  dataDir: string;
  tierLimits: TierLimits;
  /** Source of timestamps and quota periods; tests move it. */
  clock?: Clock;
  logger?: Logger;
  /** Cross-process lock timings (defaults: wait 15 s, stale after 5 s untouched). */
  lock?: LockOptions;
}

/**
 * The Store on JSON files in the seed apps' own layout (DESIGN section 4).
 * Single-host by design: the lock files coordinate processes on one machine,
 * not across machines sharing a network filesystem.
 *
 * @example
 * const store = createJsonStore({ dataDir: './data', tierLimits: DEFAULT_TIER_LIMITS });
 * const conversation = await store.conversations.create('user-1', { title: 'Hello' });
 * await store.conversations.addUserMessage('user-1', conversation.id, 'Hi!');
 * const { allowed } = await store.usage.consume('user-1');
 * await store.close();
 */
export function createJsonStore(options: JsonStoreOptions): Store {
  const ctx = createContext({
    dataDir: options.dataDir,
    tierLimits: options.tierLimits,
    clock: options.clock ?? systemClock,
    logger: options.logger ?? silentLogger,
    lock: options.lock ?? {},
  });
  // In the background (the store is usable at once); close() waits for it.
  ctx.track(() => sweepStaleTempFiles(ctx.dataDir, ctx.logger)).catch(() => undefined);
  const conversations = createConversationRepository(createJsonConversations(ctx), options.tierLimits);
  const usage = createUsageRepository(createJsonUsage(ctx), options.tierLimits);
  return {
    backend: 'json',
    mode: 'json',
    conversations,
    usage,
    ...createFormsRepositories(jsonFormsBackends(ctx)),
    uploads: createUploadRepository(createJsonUploads(ctx)),
    idempotency: createJsonIdempotency(ctx, { conversations, usage }),
    health: () => checkWritable(ctx.dataDir),
    close: () => ctx.drain(),
  };
}

/** Remove temp files a killed writer left behind (see removeStaleTempFiles); they are never data, only litter. */
async function sweepStaleTempFiles(dataDir: string, logger: Logger): Promise<void> {
  const removed = await removeStaleTempFiles(dataDir);
  if (removed.length > 0) logger.info({ count: removed.length, dataDir }, 'removed stale temp files left by an interrupted write');
}

/** Healthy when DATA_DIR exists (or can be created) and a file can be written there and removed. */
async function checkWritable(dataDir: string): Promise<StoreHealth> {
  const probe = path.join(dataDir, `.pgferry-health-${process.pid}-${randomBytes(4).toString('hex')}.json`);
  try {
    await ensureDir(dataDir);
    await writeJsonFileAtomic(probe, { ok: true });
    await removeFile(probe);
    return { ok: true, backend: 'json', mode: 'json' };
  } catch (error) {
    return { ok: false, backend: 'json', mode: 'json', error: error instanceof Error ? error.message : String(error) };
  }
}
