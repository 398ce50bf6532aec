import type { SyncStateRow } from './state.ts';

/**
 * What a `pgferry sync` run keeps in its `runs.progress` (docs/decisions.md):
 * the counts so far and the last LAG_SAMPLES lag samples, one per sync_state
 * report (every 5 s), so the admin page draws a small lag chart from the run
 * row alone — no extra table, and the samples go away with the run.
 */

/** 120 samples × 5 s: the last ten minutes. */
export const LAG_SAMPLES = 120;

export interface SyncRunProgress {
  done: number;
  imported: number;
  deleted: number;
  errors: number;
  pending: number;
  lagMs: number | null;
  lagP50Ms: number | null;
  lagP99Ms: number | null;
  /** [epoch ms, lag ms], oldest first. */
  lagSamples: Array<[number, number]>;
}

/**
 * One lag sample per report: the age of the oldest change still waiting when
 * some are; otherwise the lag of the change committed since the last sample;
 * 0 when sync had nothing to do (caught up).
 */
export function lagSample(state: SyncStateRow, previousImportAt: Date | null): number {
  if (state.pending > 0) return Math.max(state.oldestPendingMs, state.lagMs ?? 0);
  const committedSince = state.lastImportAt !== null && state.lastImportAt.getTime() !== previousImportAt?.getTime();
  return committedSince ? (state.lagMs ?? 0) : 0;
}

export class SyncRunRecorder {
  private readonly samples: Array<[number, number]> = [];
  private previousImportAt: Date | null = null;

  /** The run's progress after this report. */
  next(state: SyncStateRow, now = Date.now()): SyncRunProgress {
    this.samples.push([now, Math.round(lagSample(state, this.previousImportAt))]);
    if (this.samples.length > LAG_SAMPLES) this.samples.shift();
    this.previousImportAt = state.lastImportAt;
    return {
      done: state.imported + state.deleted,
      imported: state.imported,
      deleted: state.deleted,
      errors: state.errors,
      pending: state.pending,
      lagMs: state.lagMs,
      lagP50Ms: state.lagP50Ms,
      lagP99Ms: state.lagP99Ms,
      lagSamples: [...this.samples],
    };
  }
}
