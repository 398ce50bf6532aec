import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import { PgFerryError } from '../errors.ts';

/**
 * The problem report: one JSON object per line (JSON Lines), written as
 * problems are found so a killed run still leaves what it saw. The first
 * lines are also kept in memory for the console summary.
 */

export interface ProblemLine {
  /** conversation | usage */
  kind: string;
  /** Source path relative to --from; null for a record found only in the database. */
  file: string | null;
  /** The record's key (conversation id, user id), or null when it has none. */
  record: string | null;
  reason: string;
  severity: 'error' | 'warning';
  /** verify only: missing | different | extra | unreadable */
  problem?: string;
}

/** The error of a report file that cannot be written: a usage error (exit 2) naming the file. */
export function reportFileError(file: string, error: unknown, midRun = true): PgFerryError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const reason = code ?? (error instanceof Error ? error.message : String(error));
  const consequence = midRun ? '; the run stopped and the report is incomplete' : '';
  return new PgFerryError('CONFIG_ERROR', `--report ${file}: cannot write (${reason})${consequence}`, { file });
}

export interface ProblemReportOptions {
  /** Lines kept in memory for the console summary. */
  keep?: number;
  /**
   * Called once when the file cannot be written (disk full, file system gone):
   * the run should stop, since the report it promised is incomplete. The
   * error itself is thrown by close().
   */
  onFailure?: (error: PgFerryError) => void;
}

export class ProblemReport {
  readonly first: ProblemLine[] = [];
  errors = 0;
  warnings = 0;
  private readonly file: string | undefined;
  private readonly stream: WriteStream | undefined;
  private readonly keep: number;
  private failure: PgFerryError | undefined;
  private closed = false;

  /** `file` undefined: keep counts and the first lines only. */
  constructor(file?: string, options: ProblemReportOptions = {}) {
    this.file = file;
    this.keep = options.keep ?? 20;
    this.stream = file === undefined ? undefined : createWriteStream(file, { flags: 'w' });
    // A failed open or write becomes the run's error (close() throws it), never an unhandled event.
    this.stream?.on('error', (error) => {
      if (this.failure) return;
      this.failure = reportFileError(file!, error);
      options.onFailure?.(this.failure);
    });
  }

  add(line: ProblemLine): void {
    if (line.severity === 'error') this.errors++;
    else this.warnings++;
    if (this.first.length < this.keep) this.first.push(line);
    if (!this.failure) this.stream?.write(`${JSON.stringify(line)}\n`);
  }

  /** Flush and close the file; throws (CONFIG_ERROR naming the file) when any of it could not be written. */
  async close(): Promise<void> {
    if (!this.stream || this.closed) {
      if (this.failure) throw this.failure;
      return;
    }
    this.closed = true;
    if (!this.failure) {
      // finished() settles on 'finish' or on 'error': a failing disk cannot leave us waiting.
      await finished(this.stream.end()).catch((error: unknown) => {
        this.failure ??= reportFileError(this.file!, error);
      });
    }
    if (this.failure) throw this.failure;
  }
}

/** Fail early (usage error, exit 2) when the report file cannot be created. */
export async function checkWritable(file: string): Promise<void> {
  const stream = createWriteStream(file, { flags: 'a' });
  try {
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => resolve());
      stream.once('error', reject);
    });
  } catch (error) {
    throw reportFileError(file, error, false);
  }
  stream.end();
  await once(stream, 'close');
}
