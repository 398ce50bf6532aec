import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { PgFerryError } from '../../errors.ts';
import { mapOrdered } from '../concurrency.ts';

/**
 * The chat app's JSON tree (DESIGN section 8.1, seeds 001 and 003), as a
 * list of source files, then as a stream of parsed documents.
 *
 *   conversations/<userId>/<conversationId>.json   per-user layout
 *   conversations/<conversationId>.json            original single-user layout (--default-user)
 *   usage/<userId>/usage.json
 *
 * Scanning lists paths and sizes only (cheap, and it gives the progress bar
 * its totals and finds ids present in two users' folders before anything is
 * loaded). Reading is a separate, bounded-concurrency pass.
 *
 * Symlinks are followed only when their target lies inside the root; a link
 * leading outside is reported and never opened.
 */

export const CHAT_KINDS = ['conversations', 'usage'] as const;
export type ChatKind = (typeof CHAT_KINDS)[number];

/** import_log.kind for each source kind. */
export const LOG_KIND: Record<ChatKind, string> = { conversations: 'conversation', usage: 'usage' };

/**
 * A source file as the scan keeps it: kind, path and size only, since the
 * list lives for the whole run (about 150 bytes a file). The user folder and
 * the file's key are read off the path (fileUser, fileStem).
 */
export interface SourceFile {
  kind: ChatKind;
  /** Path relative to the root, with forward slashes: what reports and import_log show. */
  rel: string;
  size: number;
}

/** The user folder a file sits in (`conversations/<user>/…`, `usage/<user>/usage.json`); null for the single-user layout. */
export function fileUser(file: SourceFile): string | null {
  const parts = file.rel.split('/');
  return parts.length === 3 ? parts[1]! : null;
}

/** The key a file stands for by its name: a conversation file's name without `.json`, a usage file's user folder. */
export function fileStem(file: SourceFile): string {
  const parts = file.rel.split('/');
  if (file.kind === 'usage') return parts[1]!;
  const name = parts.at(-1)!;
  return name.endsWith('.json') ? name.slice(0, -'.json'.length) : name;
}

/** A file or directory that is not a record: reported, never imported. */
export interface SourceProblem {
  kind: ChatKind;
  rel: string;
  /** The record key when the path implies one (so verify can account for it). */
  key: string | null;
  reason: string;
  /** Warnings are reported but do not fail the run. */
  severity: 'error' | 'warning';
}

/**
 * The scan's file list, kept for the whole run without a JS object per file:
 * paths as UTF-8 bytes in one growing buffer, sizes and kinds in typed arrays
 * (about 100 bytes a file, off the garbage-collected heap). SourceFile objects
 * are made on the way out. Order: the walk's (directory entries by name).
 */
export class FileList implements Iterable<SourceFile> {
  private bytes = Buffer.allocUnsafe(64 * 1024);
  private used = 0;
  private ends = new Uint32Array(1024);
  private sizes = new Float64Array(1024);
  private kinds = new Uint8Array(1024);
  private count = 0;

  get length(): number {
    return this.count;
  }

  push(file: SourceFile): void {
    const needed = Buffer.byteLength(file.rel);
    if (this.used + needed > this.bytes.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.bytes.length * 2, this.used + needed));
      this.bytes.copy(bigger, 0, 0, this.used);
      this.bytes = bigger;
    }
    if (this.count === this.ends.length) {
      const grow = <T extends Uint32Array | Float64Array | Uint8Array>(array: T, make: (n: number) => T): T => {
        const next = make(array.length * 2);
        next.set(array);
        return next;
      };
      this.ends = grow(this.ends, (n) => new Uint32Array(n));
      this.sizes = grow(this.sizes, (n) => new Float64Array(n));
      this.kinds = grow(this.kinds, (n) => new Uint8Array(n));
    }
    this.used += this.bytes.write(file.rel, this.used, 'utf8');
    this.ends[this.count] = this.used;
    this.sizes[this.count] = file.size;
    this.kinds[this.count] = CHAT_KINDS.indexOf(file.kind);
    this.count++;
  }

  at(index: number): SourceFile {
    const start = index === 0 ? 0 : this.ends[index - 1]!;
    return { kind: CHAT_KINDS[this.kinds[index]!]!, rel: this.bytes.toString('utf8', start, this.ends[index]!), size: this.sizes[index]! };
  }

  *[Symbol.iterator](): Iterator<SourceFile> {
    for (let i = 0; i < this.count; i++) yield this.at(i);
  }
}

export interface ChatScan {
  root: string;
  files: FileList;
  problems: SourceProblem[];
  totalBytes: number;
  /** Non-record files skipped (e.g. editor backups, temp files): counted only. */
  ignored: number;
}

export interface ScanOptions {
  kinds?: readonly ChatKind[];
}

/**
 * Resolve and check the --from directory; a missing or unreadable directory,
 * or one without the expected folders, is a usage error (exit 2) naming what to pass instead.
 */
export async function resolveSourceRoot(dir: string): Promise<string> {
  let root: string;
  try {
    root = await fs.realpath(dir);
    const stat = await fs.stat(root);
    if (!stat.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    await fs.access(root, fsConstants.R_OK | fsConstants.X_OK);
    await fs.readdir(root);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new PgFerryError('CONFIG_ERROR', `cannot read --from directory ${JSON.stringify(dir)} (${code}): pass the app's data directory`);
  }
  const has = async (name: string) =>
    fs
      .stat(path.join(root, name))
      .then((s) => s.isDirectory())
      .catch(() => false);
  if ((await has('conversations')) || (await has('usage'))) return root;
  const hints: string[] = [];
  if (await has('data')) hints.push(`did you mean ${path.join(dir, 'data')}?`);
  const base = path.basename(root);
  if ((CHAT_KINDS as readonly string[]).includes(base)) hints.push(`did you mean its parent ${path.dirname(dir)}?`);
  throw new PgFerryError(
    'CONFIG_ERROR',
    `--from ${JSON.stringify(dir)} has no conversations/ or usage/ folder: pass the app's data directory (the one that contains conversations/)` +
      (hints.length > 0 ? `; ${hints.join(' ')}` : ''),
  );
}

interface Entry {
  name: string;
  abs: string;
  rel: string;
  type: 'file' | 'dir' | 'other';
  size: number;
  mtimeMs: number;
}

/** One directory's entries, symlinks resolved within the root; problems recorded. */
async function listDir(
  root: string,
  absDir: string,
  relDir: string,
  kind: ChatKind,
  problems: SourceProblem[],
  visited: Set<string>,
): Promise<Entry[]> {
  let names: string[];
  try {
    names = (await fs.readdir(absDir)).sort();
  } catch (error) {
    problems.push({
      kind,
      rel: relDir,
      key: null,
      reason: `cannot read directory: ${(error as NodeJS.ErrnoException).code}`,
      severity: 'error',
    });
    return [];
  }
  const out: Entry[] = [];
  for (const name of names) {
    const abs = path.join(absDir, name);
    const rel = `${relDir}/${name}`;
    let stat: import('node:fs').Stats;
    try {
      stat = await fs.lstat(abs);
      if (stat.isSymbolicLink()) {
        let target: string;
        try {
          target = await fs.realpath(abs);
        } catch {
          problems.push({ kind, rel, key: keyFromName(name), reason: 'broken symlink: not followed', severity: 'error' });
          continue;
        }
        if (target !== root && !target.startsWith(root + path.sep)) {
          problems.push({ kind, rel, key: keyFromName(name), reason: 'symlink leads outside --from: not followed', severity: 'error' });
          continue;
        }
        stat = await fs.stat(target);
        if (stat.isDirectory()) {
          if (visited.has(target)) continue; // a loop, or a second way into a directory already read
          visited.add(target);
        }
      }
    } catch (error) {
      problems.push({
        kind,
        rel,
        key: keyFromName(name),
        reason: `cannot stat: ${(error as NodeJS.ErrnoException).code}`,
        severity: 'error',
      });
      continue;
    }
    out.push({
      name,
      abs,
      rel,
      type: stat.isDirectory() ? 'dir' : stat.isFile() ? 'file' : 'other',
      size: stat.size,
      mtimeMs: stat.mtimeMs,
    });
  }
  return out;
}

const keyFromName = (name: string): string | null => (name.endsWith('.json') ? name.slice(0, -'.json'.length) : null);

/** Where a source file is (the scan keeps only relative paths: the list is held for the whole run). */
export const sourcePath = (root: string, file: SourceFile): string => path.join(root, file.rel);

/** Temp and backup files the apps' safe-write code leaves behind: not records. */
const isIgnorable = (name: string) => name.startsWith('.') || name.endsWith('~') || /\.(tmp|bak|swp|lock)$/i.test(name);

/** List the source files of the chosen kinds (conversations first, each directory by name). No file is opened. */
export async function scanChatSource(root: string, options: ScanOptions = {}): Promise<ChatScan> {
  const kinds = options.kinds ?? CHAT_KINDS;
  const scan: ChatScan = { root, files: new FileList(), problems: [], totalBytes: 0, ignored: 0 };
  const visited = new Set<string>([root]);
  const add = (file: SourceFile) => {
    scan.files.push(file);
    scan.totalBytes += file.size;
  };

  if (kinds.includes('conversations')) {
    const top = path.join(root, 'conversations');
    visited.add(top);
    for (const entry of await listExisting(root, top, 'conversations', 'conversations', scan.problems, visited)) {
      if (entry.type === 'file' && entry.name.endsWith('.json')) {
        add({
          kind: 'conversations',
          rel: entry.rel,
          size: entry.size,
        });
      } else if (entry.type === 'dir') {
        for (const inner of await listDir(root, entry.abs, entry.rel, 'conversations', scan.problems, visited)) {
          if (inner.type === 'file' && inner.name.endsWith('.json')) {
            add({
              kind: 'conversations',
              rel: inner.rel,
              size: inner.size,
            });
          } else if (inner.type === 'dir') {
            scan.problems.push({
              kind: 'conversations',
              rel: inner.rel,
              key: null,
              reason: 'unexpected directory below a user folder: not read',
              severity: 'warning',
            });
          } else scan.ignored++;
        }
      } else scan.ignored++;
    }
  }

  if (kinds.includes('usage')) {
    const top = path.join(root, 'usage');
    visited.add(top);
    for (const entry of await listExisting(root, top, 'usage', 'usage', scan.problems, visited)) {
      if (entry.type !== 'dir') {
        if (entry.type === 'file' && entry.name.endsWith('.json') && !isIgnorable(entry.name)) {
          scan.problems.push({
            kind: 'usage',
            rel: entry.rel,
            key: null,
            reason: 'usage file outside a user folder (expected usage/<userId>/usage.json): not read',
            severity: 'warning',
          });
        } else scan.ignored++;
        continue;
      }
      for (const inner of await listDir(root, entry.abs, entry.rel, 'usage', scan.problems, visited)) {
        if (inner.type === 'file' && inner.name === 'usage.json') {
          add({
            kind: 'usage',
            rel: inner.rel,
            size: inner.size,
          });
        } else scan.ignored++;
      }
    }
  }
  // A symlink problem below usage/<uid>/ names usage.json; its record key is the user folder.
  for (const problem of scan.problems) {
    if (problem.kind === 'usage' && problem.key === 'usage') problem.key = problem.rel.split('/')[1] ?? null;
  }
  return scan;
}

async function listExisting(
  root: string,
  abs: string,
  rel: string,
  kind: ChatKind,
  problems: SourceProblem[],
  visited: Set<string>,
): Promise<Entry[]> {
  try {
    const stat = await fs.lstat(abs);
    if (stat.isSymbolicLink()) {
      const target = await fs.realpath(abs);
      if (!target.startsWith(root + path.sep)) {
        problems.push({ kind, rel, key: null, reason: 'symlink leads outside --from: not followed', severity: 'error' });
        return [];
      }
      return listDir(root, target, rel, kind, problems, visited);
    }
  } catch {
    return []; // the folder does not exist: nothing of this kind
  }
  return listDir(root, abs, rel, kind, problems, visited);
}

/**
 * Conversation ids found in more than one file (two users' folders, or the
 * single-user layout and a user folder). Neither copy is imported: which one
 * is right is a person's decision.
 */
export function findDuplicateKeys(files: Iterable<SourceFile>): Map<string, SourceFile[]> {
  const seen = new Set<string>();
  const duplicated = new Set<string>();
  for (const file of files) {
    if (file.kind !== 'conversations') continue;
    const stem = fileStem(file);
    if (seen.has(stem)) duplicated.add(stem);
    else seen.add(stem);
  }
  const byKey = new Map<string, SourceFile[]>();
  if (duplicated.size === 0) return byKey;
  for (const file of files) {
    if (file.kind !== 'conversations' || !duplicated.has(fileStem(file))) continue;
    const stem = fileStem(file);
    byKey.set(stem, [...(byKey.get(stem) ?? []), file]);
  }
  return byKey;
}

export interface ReadResult {
  file: SourceFile;
  /** The file's modification time (a conversation without created_at takes it). */
  mtimeMs: number;
  /** The decoded text, or undefined when `error` is set. */
  text?: string;
  error?: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Read buffers reused across files: a transfer reads gigabytes, and fresh
 * buffers per file would pile up as external memory between full garbage
 * collections. At most `concurrency` are out at once.
 */
class ReadBuffers {
  private static readonly SIZE = 256 * 1024;
  private readonly free: Buffer[] = [];

  take(size: number): Buffer {
    if (size > ReadBuffers.SIZE) return Buffer.allocUnsafeSlow(size);
    return this.free.pop() ?? Buffer.allocUnsafeSlow(ReadBuffers.SIZE);
  }

  give(buffer: Buffer): void {
    if (buffer.length === ReadBuffers.SIZE && this.free.length < 64) this.free.push(buffer);
  }
}

type RawRead = { file: SourceFile; mtimeMs: number; buffer: Buffer; length: number } | { file: SourceFile; mtimeMs: number; error: string };

/**
 * Read files with at most `concurrency` reads in flight, yielding results in
 * file order. A file's text is decoded only when its turn comes, so it is
 * parsed (and dropped) right away. Bytes are decoded strictly: invalid UTF-8
 * is an error, never a silent replacement character. Parsing is the caller's.
 */
export async function* readSourceFiles(root: string, files: Iterable<SourceFile>, concurrency = 8): AsyncGenerator<ReadResult> {
  const buffers = new ReadBuffers();
  const reads = mapOrdered(files, concurrency, async (file): Promise<RawRead> => {
    let mtimeMs = 0;
    let buffer: Buffer | undefined;
    try {
      const handle = await fs.open(sourcePath(root, file), 'r');
      try {
        const stat = await handle.stat();
        mtimeMs = stat.mtimeMs;
        buffer = buffers.take(stat.size);
        let length = 0;
        while (length < stat.size) {
          const { bytesRead } = await handle.read(buffer, length, stat.size - length, length);
          if (bytesRead === 0) break;
          length += bytesRead;
        }
        return { file, mtimeMs, buffer, length };
      } finally {
        await handle.close();
      }
    } catch (error) {
      if (buffer) buffers.give(buffer);
      return { file, mtimeMs, error: `cannot read file: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` };
    }
  });
  for await (const read of reads) {
    if ('error' in read) {
      yield read;
      continue;
    }
    const bytes = read.buffer.subarray(0, read.length);
    // Fast native decoding; only a file that then shows U+FFFD (rare) is decoded
    // again strictly, to tell a real U+FFFD from invalid bytes.
    let result: ReadResult = { file: read.file, mtimeMs: read.mtimeMs, text: bytes.toString('utf8') };
    if (result.text!.includes('\ufffd')) {
      try {
        result = { ...result, text: utf8.decode(bytes) };
      } catch {
        result = { file: read.file, mtimeMs: read.mtimeMs, error: 'file is not valid UTF-8' };
      }
    }
    buffers.give(read.buffer);
    yield result;
  }
}
