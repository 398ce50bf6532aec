import type { Database } from '../../db/database.ts';
import { PgFerryError } from '../../errors.ts';
import { type Logger, redactSecrets } from '../../log.ts';
import type { LoadSettings } from '../../transfer/kinds/types.ts';
import { applyRecordFiles, type RecordRef } from './apply.ts';
import { Journal } from './journal.ts';

export interface MirrorOptions {
  db: Database;
  dataDir: string;
  settings: LoadSettings;
  logger: Logger;
  /** How often a non-empty journal is retried (ms). */
  retryMs?: number;
}

export interface MirrorCounters {
  applied: number;
  journaled: number;
  replayed: number;
  failures: number;
}

/**
 * Copies the records a JSON write changed into PostgreSQL (apply.ts), or,
 * when PostgreSQL fails, into the durable journal (journal.ts), which a
 * background loop replays as soon as PostgreSQL answers again.
 *
 * While the journal holds anything, new changes go straight to it: PostgreSQL
 * is known to be behind (or down), and a caller should not wait for a
 * connection attempt per write.
 */
export class Mirror {
  readonly journal: Journal;
  readonly counters: MirrorCounters = { applied: 0, journaled: 0, replayed: 0, failures: 0 };
  private readonly options: MirrorOptions;
  private backlog = true; // until the first drain has looked at the journal
  private draining: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastError: string | undefined;

  constructor(options: MirrorOptions) {
    this.options = options;
    this.journal = new Journal(options.dataDir);
  }

  /** Replay what an earlier run left in the journal, then keep retrying in the background. */
  async start(): Promise<void> {
    await this.drain();
    this.timer = setInterval(() => void this.drain(), this.options.retryMs ?? 1000);
    this.timer.unref();
  }

  /**
   * dual: PostgreSQL's copy of these records is brought up to date, now or
   * later; never throws for a PostgreSQL failure (the refs are journaled and
   * fsynced before this returns).
   */
  async changed(refs: readonly RecordRef[]): Promise<void> {
    if (refs.length === 0) return;
    if (this.backlog) return this.toJournal(refs);
    try {
      await this.apply(refs);
    } catch (error) {
      this.failed(error);
      await this.toJournal(refs);
    }
  }

  /**
   * postgres-fallback: as `changed`, but the caller must know PostgreSQL has
   * the write (it answers reads): a failure is journaled (so PostgreSQL
   * catches up with the JSON files later) and then thrown as UNAVAILABLE.
   */
  async required(refs: readonly RecordRef[]): Promise<void> {
    if (refs.length === 0) return;
    try {
      if (this.backlog) await this.drain();
      if (this.backlog) throw new PgFerryError('UNAVAILABLE', this.lastError ?? 'PostgreSQL is behind (journal not empty)');
      await this.apply(refs);
    } catch (error) {
      this.failed(error);
      await this.toJournal(refs);
      throw error instanceof PgFerryError && error.code === 'UNAVAILABLE'
        ? error
        : new PgFerryError('UNAVAILABLE', `PostgreSQL did not take the write: ${redactSecrets(String((error as Error).message ?? error))}`);
    }
  }

  /** dual while `behind`: journal the records a write is about to change, before it runs (fsynced). */
  async journalAhead(refs: readonly RecordRef[]): Promise<void> {
    await this.toJournal(refs);
  }

  /** Replay the journal once (one replay at a time); PostgreSQL failures leave it for the next round. */
  drain(): Promise<void> {
    this.draining ??= this.replay().finally(() => {
      this.draining = undefined;
    });
    return this.draining;
  }

  /** True while changes wait in the journal. */
  get behind(): boolean {
    return this.backlog;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.draining;
    await this.journal.close();
  }

  private async replay(): Promise<void> {
    try {
      const replayed = await this.journal.drain((refs) => this.apply(refs));
      this.counters.replayed += replayed;
      if (replayed > 0) this.options.logger.info({ entries: replayed }, 'cutover: journal replayed into PostgreSQL');
      this.backlog = false;
      this.lastError = undefined;
    } catch (error) {
      this.failed(error);
    }
  }

  private async apply(refs: readonly RecordRef[]): Promise<void> {
    const { db, dataDir, settings, logger } = this.options;
    await applyRecordFiles(db, dataDir, refs, settings, logger);
    this.counters.applied += refs.length;
  }

  private async toJournal(refs: readonly RecordRef[]): Promise<void> {
    await this.journal.append(refs);
    this.counters.journaled += refs.length;
    this.backlog = true;
  }

  private failed(error: unknown): void {
    this.counters.failures++;
    const reason = redactSecrets(String((error as Error)?.message ?? error));
    if (!this.backlog || this.lastError !== reason) {
      this.options.logger.warn({ reason }, 'cutover: PostgreSQL did not take a write; journaled, replayed when it is back');
    }
    this.lastError = reason;
  }
}
