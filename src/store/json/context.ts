import path from 'node:path';
import type { TierLimits } from '../../config.ts';
import { PgFerryError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { Clock } from '../types.ts';
import type { LockOptions } from './locks.ts';

/** What the JSON repositories share: where the files are, the clock, and the store's open/closed state. */
export interface JsonContext {
  /** Absolute DATA_DIR. */
  readonly dataDir: string;
  readonly tierLimits: TierLimits;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly lock: LockOptions;
  /** Run one store operation, refusing it after close() and letting close() wait for it. */
  track<T>(operation: () => Promise<T>): Promise<T>;
  /** Resolve a path below DATA_DIR from already validated ids; refuses anything that would escape it. */
  pathIn(...segments: string[]): string;
}

export function createContext(options: Omit<JsonContext, 'track' | 'pathIn'>): JsonContext & { drain(): Promise<void> } {
  const inFlight = new Set<Promise<unknown>>();
  let closed = false;
  const dataDir = path.resolve(options.dataDir);
  return {
    ...options,
    dataDir,
    track<T>(operation: () => Promise<T>): Promise<T> {
      if (closed) return Promise.reject(new PgFerryError('UNAVAILABLE', 'the JSON store is closed'));
      const running = operation();
      inFlight.add(running);
      const forget = () => inFlight.delete(running);
      running.then(forget, forget);
      return running;
    },
    pathIn(...segments: string[]): string {
      const target = path.resolve(dataDir, ...segments);
      // Ids are validated before this point; this is the second line of defence.
      if (!target.startsWith(dataDir + path.sep)) throw new PgFerryError('INVALID_INPUT', 'path escapes DATA_DIR');
      return target;
    },
    async drain(): Promise<void> {
      closed = true;
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
  };
}
