import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from '../../log.ts';
import { readJsonFile, writeJsonFileAtomic } from '../json/files.ts';

/**
 * Shadow reads (GitHub Scientist's idea, for storage): a sampled share of
 * reads (SHADOW_READ_RATE) also runs on the other store and the two answers
 * are compared on what both must agree on. The caller always gets the
 * answering store's result, at once; the comparison runs after.
 *
 * Counts per repository are kept in DATA_DIR/.pgferry/cutover/shadow-reads.json,
 * written at most once a second and on close, so `pgferry cutover status` in
 * another process can read them.
 */
export interface ShadowCounts {
  compared: number;
  mismatches: number;
  /** The other store failed (e.g. PostgreSQL down): not a mismatch. */
  errors: number;
  lastMismatch?: { method: string; at: string; difference: string };
}

export type ShadowFile = { updatedAt: string; repositories: Record<string, ShadowCounts> };

export function shadowFilePath(dataDir: string): string {
  return path.join(dataDir, '.pgferry', 'cutover', 'shadow-reads.json');
}

export async function readShadowFile(dataDir: string): Promise<ShadowFile | undefined> {
  try {
    return (await readJsonFile(shadowFilePath(dataDir))) as ShadowFile | undefined;
  } catch {
    return undefined;
  }
}

export class ShadowReads {
  private readonly rate: number;
  private readonly dataDir: string;
  private readonly logger: Logger;
  private counts: Record<string, ShadowCounts> = {};
  private readonly inFlight = new Set<Promise<void>>();
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  private saving: Promise<void> = Promise.resolve();

  constructor(options: { rate: number; dataDir: string; logger: Logger }) {
    this.rate = options.rate;
    this.dataDir = options.dataDir;
    this.logger = options.logger;
  }

  /** Carry on the counts an earlier run saved. */
  async start(): Promise<void> {
    if (this.rate <= 0) return;
    this.counts = (await readShadowFile(this.dataDir))?.repositories ?? {};
    this.timer = setInterval(() => void this.save(), 1000);
    this.timer.unref();
  }

  sample(): boolean {
    return this.rate > 0 && Math.random() < this.rate;
  }

  /** Compare `answer` with what `other()` returns, both through `project`; in the background. */
  compare<T>(repository: string, method: string, answer: T, other: () => Promise<T>, project: (value: T) => unknown): void {
    const run = (async () => {
      this.counts[repository] ??= { compared: 0, mismatches: 0, errors: 0 };
      const counts = this.counts[repository];
      let otherAnswer: T;
      try {
        otherAnswer = await other();
      } catch (error) {
        counts.errors++;
        this.dirty = true;
        this.logger.debug({ repository, method, reason: String((error as Error)?.message ?? error) }, 'shadow read failed');
        return;
      }
      counts.compared++;
      const expected = project(answer);
      const got = project(otherAnswer);
      if (!isDeepStrictEqual(expected, got)) {
        counts.mismatches++;
        const difference = firstDifference(expected, got);
        counts.lastMismatch = { method, at: new Date().toISOString(), difference };
        this.logger.warn({ repository, method, difference }, 'shadow read: the stores disagree');
      }
      this.dirty = true;
    })();
    this.inFlight.add(run);
    void run.finally(() => this.inFlight.delete(run));
  }

  snapshot(): Record<string, ShadowCounts> {
    return structuredClone(this.counts);
  }

  /** Wait for running comparisons (tests; close). */
  async settle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.settle();
    await this.save();
  }

  private save(): Promise<void> {
    if (!this.dirty) return this.saving;
    this.dirty = false;
    const file: ShadowFile = { updatedAt: new Date().toISOString(), repositories: this.counts };
    this.saving = this.saving
      .then(() => writeJsonFileAtomic(shadowFilePath(this.dataDir), file))
      .catch((error) => this.logger.warn({ reason: String(error) }, 'shadow read counts not saved'));
    return this.saving;
  }
}

/** A short description of where two JSON-like values first differ. */
export function firstDifference(a: unknown, b: unknown, at = ''): string {
  if (isDeepStrictEqual(a, b)) return '';
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) {
    return `${at || 'value'}: ${JSON.stringify(a)?.slice(0, 80)} vs ${JSON.stringify(b)?.slice(0, 80)}`;
  }
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const key of keys) {
    const found = firstDifference((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key], at ? `${at}.${key}` : key);
    if (found) return found;
  }
  return at || 'value';
}
