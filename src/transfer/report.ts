import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';

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

export class ProblemReport {
  readonly first: ProblemLine[] = [];
  errors = 0;
  warnings = 0;
  private readonly stream: WriteStream | undefined;
  private readonly keep: number;
  private closed = false;

  /** `file` undefined: keep counts and the first lines only. */
  constructor(file?: string, keep = 20) {
    this.keep = keep;
    this.stream = file === undefined ? undefined : createWriteStream(file, { flags: 'w' });
    // Surface an unwritable path as an error of the run, not an unhandled event.
    this.stream?.on('error', () => {});
  }

  add(line: ProblemLine): void {
    if (line.severity === 'error') this.errors++;
    else this.warnings++;
    if (this.first.length < this.keep) this.first.push(line);
    this.stream?.write(`${JSON.stringify(line)}\n`);
  }

  async close(): Promise<void> {
    if (!this.stream || this.closed) return;
    this.closed = true;
    this.stream.end();
    if (!this.stream.writableFinished) await once(this.stream, 'finish');
  }
}

/** Fail early (usage error) when the report cannot be created. */
export async function checkWritable(file: string): Promise<void> {
  const stream = createWriteStream(file, { flags: 'a' });
  await new Promise<void>((resolve, reject) => {
    stream.once('open', () => resolve());
    stream.once('error', reject);
  });
  stream.end();
  await once(stream, 'close');
}
