import { type FileHandle, open, readFile, stat, truncate } from 'node:fs/promises';
import path from 'node:path';
import { ensureDir, readJsonFile, withKeyedMutex, withLockFile, writeJsonFileAtomic } from '../json/files.ts';
import type { RecordRef } from './apply.ts';

/**
 * The durable journal of writes PostgreSQL has not got yet (STORAGE_MODE=dual):
 *
 *   DATA_DIR/.pgferry/journal/journal.jsonl    one entry per line, appended, fsynced
 *   DATA_DIR/.pgferry/journal/applied.json     {"offset", "generation"}: bytes of journal.jsonl already applied
 *
 * An entry is `{"id", "at", "kind", "rel"}`: which record changed (apply.ts),
 * not how, so replaying it copies the record's file as it is then. Replaying
 * an entry twice (a crash after the apply, before `applied.json` moved on)
 * writes nothing the second time: the record is unchanged, or newer, in
 * PostgreSQL. A line cut short by a crash mid-append was never acknowledged
 * to its caller and is skipped.
 *
 * Every change of the files happens under a lock file, so several app
 * processes on one DATA_DIR can share the journal.
 */
export interface JournalEntry extends RecordRef {
  id: string;
  at: string;
}

export interface Pending {
  entries: JournalEntry[];
  /** Bumped each time the file is emptied: offsets of another generation mean nothing. */
  generation: number;
  /** Offset just past the last complete entry read. */
  end: number;
  /** A cut-short last line (a crash mid-append): skipped. */
  torn: boolean;
}

let sequence = 0;

export class Journal {
  readonly dir: string;
  readonly file: string;
  private readonly cursorFile: string;
  private handle: FileHandle | undefined;

  constructor(dataDir: string) {
    this.dir = path.join(dataDir, '.pgferry', 'journal');
    this.file = path.join(this.dir, 'journal.jsonl');
    this.cursorFile = path.join(this.dir, 'applied.json');
  }

  /** Append entries for these records; returns once they are on disk (fsync). */
  async append(refs: readonly RecordRef[]): Promise<JournalEntry[]> {
    if (refs.length === 0) return [];
    const at = new Date().toISOString();
    const entries = refs.map((ref) => ({ id: `${process.pid}-${Date.now()}-${++sequence}`, at, kind: ref.kind, rel: ref.rel }));
    const text = entries.map((entry) => `${JSON.stringify(entry)}\n`).join('');
    await this.locked(async () => {
      const handle = await this.openForAppend();
      await handle.write(text);
      await handle.datasync();
    });
    return entries;
  }

  /** Entries not applied yet, oldest first. */
  async pending(): Promise<Pending> {
    const { offset, generation } = await this.cursor();
    let bytes: Buffer;
    try {
      bytes = await readFile(this.file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], generation, end: 0, torn: false };
      throw error;
    }
    const start = offset <= bytes.length ? offset : 0;
    const entries: JournalEntry[] = [];
    let at = start;
    let torn = false;
    while (at < bytes.length) {
      const newline = bytes.indexOf(0x0a, at);
      const line = bytes.subarray(at, newline === -1 ? bytes.length : newline).toString('utf8');
      if (newline === -1) {
        torn = true;
        at = bytes.length;
        break;
      }
      at = newline + 1;
      try {
        entries.push(JSON.parse(line) as JournalEntry);
      } catch {
        torn = true; // a crash left a partial line before later appends: skip it
      }
    }
    return { entries, generation, end: at, torn };
  }

  /** How many entries wait to be applied (for health and `pgferry cutover status`). */
  async depth(): Promise<number> {
    return (await this.pending()).entries.length;
  }

  /**
   * Apply the pending entries with `apply` (which throws when PostgreSQL
   * fails: then nothing moves on), and move the cursor past them. Entries
   * for one record collapse into one apply: it copies the file as it is now.
   * Once everything is applied the journal is emptied.
   *
   * The lock is held only to read and to move the cursor, never while
   * PostgreSQL is being waited for, so appends (the app's writes) never wait
   * on a replay. Two processes replaying the same entries at once is
   * harmless: an apply is idempotent.
   */
  async drain(apply: (refs: RecordRef[]) => Promise<void>, chunk = 1000): Promise<number> {
    const { entries, end, generation } = await this.locked(() => this.pending());
    if (entries.length === 0) return 0;
    const latest = new Map<string, RecordRef>();
    for (const entry of entries) {
      const id = `${entry.kind}\u0000${entry.rel}`;
      latest.delete(id); // keep the order of each record's last change
      latest.set(id, { kind: entry.kind, rel: entry.rel });
    }
    const refs = [...latest.values()];
    for (let i = 0; i < refs.length; i += chunk) await apply(refs.slice(i, i + chunk));
    await this.locked(() => this.compactTo(end, generation));
    return entries.length;
  }

  async close(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
  }

  private async compactTo(end: number, generation: number): Promise<void> {
    const cursor = await this.cursor();
    // Another process replayed these entries and emptied the file meanwhile: nothing to move.
    if (cursor.generation !== generation || cursor.offset > end) return;
    const size = await stat(this.file).then(
      (s) => s.size,
      () => 0,
    );
    if (end >= size) {
      // Everything applied (appends wait for the lock we hold): start the file afresh.
      if (size > 0) {
        await truncate(this.file, 0);
        await this.handle?.close();
        this.handle = undefined;
      }
      await this.setCursor({ offset: 0, generation: generation + 1 });
    } else await this.setCursor({ offset: end, generation });
  }

  private async openForAppend(): Promise<FileHandle> {
    if (!this.handle) {
      await ensureDir(this.dir);
      this.handle = await open(this.file, 'a');
    }
    return this.handle;
  }

  private async cursor(): Promise<{ offset: number; generation: number }> {
    try {
      const value = (await readJsonFile(this.cursorFile)) as { offset?: unknown; generation?: unknown } | undefined;
      return {
        offset: typeof value?.offset === 'number' ? value.offset : 0,
        generation: typeof value?.generation === 'number' ? value.generation : 0,
      };
    } catch {
      return { offset: 0, generation: 0 };
    }
  }

  private async setCursor(cursor: { offset: number; generation: number }): Promise<void> {
    await ensureDir(this.dir);
    await writeJsonFileAtomic(this.cursorFile, cursor);
  }

  /** In-process queue first (one lock-file poller per process), then the cross-process lock file. */
  private async locked<T>(fn: () => Promise<T>): Promise<T> {
    await ensureDir(this.dir);
    return withKeyedMutex(this.file, () => withLockFile(this.file, fn, { waitMs: 60_000 }));
  }
}
