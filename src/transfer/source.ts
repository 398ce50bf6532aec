import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { formatBytes } from '../domain/limits.ts';
import { PgFerryError } from '../errors.ts';
import { mapOrdered } from './concurrency.ts';
import type { KindDescriptor, KindScan, WalkEntry } from './kinds/types.ts';
import { DEFAULT_MAX_FILE_SIZE, tooLargeReason } from './limits.ts';
import { sourceVersionNow } from './version.ts';

/**
 * The source tree as the engine sees it: the kinds' files as a list of paths
 * and sizes, then as a stream of decoded texts. Where a kind's files are is
 * the kind's own business (its `scan`, with the walk helpers here).
 *
 * Scanning lists paths and sizes only (cheap, and it gives the progress bar
 * its totals and finds keys present in two files before anything is
 * loaded). Reading is a separate, bounded-concurrency pass.
 *
 * Symlinks are followed only when their target lies inside the root; a link
 * leading outside is reported and never opened.
 */

/**
 * A source file as the scan keeps it: kind, path and size only, since the
 * list lives for the whole run (about 150 bytes a file). The record's key is
 * read off the path (the kind's fileKey).
 */
export interface SourceFile {
  /** The kind's name (KindDescriptor.name). */
  kind: string;
  /** Path relative to the root, with forward slashes: what reports and import_log show. */
  rel: string;
  size: number;
}

/** A file or directory that is not a record: reported, never imported. */
export interface SourceProblem {
  kind: string;
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
  /** Kind names; a file keeps its kind's index (at most 256 kinds). */
  private readonly kindNames: readonly string[];

  constructor(kindNames: readonly string[]) {
    if (kindNames.length > 256) throw new Error('FileList: more than 256 kinds');
    this.kindNames = kindNames;
  }

  get length(): number {
    return this.count;
  }

  push(file: SourceFile): void {
    const kindIndex = this.kindNames.indexOf(file.kind);
    if (kindIndex < 0) throw new Error(`FileList: unknown kind ${file.kind}`);
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
    this.kinds[this.count] = kindIndex;
    this.count++;
  }

  at(index: number): SourceFile {
    const start = index === 0 ? 0 : this.ends[index - 1]!;
    return {
      kind: this.kindNames[this.kinds[index]!]!,
      rel: this.bytes.toString('utf8', start, this.ends[index]!),
      size: this.sizes[index]!,
    };
  }

  *[Symbol.iterator](): Iterator<SourceFile> {
    for (let i = 0; i < this.count; i++) yield this.at(i);
  }
}

export interface SourceScan {
  root: string;
  /** The kinds scanned, in order; their files come in this order too. */
  kinds: readonly KindDescriptor[];
  files: FileList;
  problems: SourceProblem[];
  totalBytes: number;
  /** Non-record files skipped (e.g. editor backups, temp files): counted only. */
  ignored: number;
}

/**
 * Resolve and check the --from directory; a missing or unreadable directory,
 * or one without any of the kinds' folders, is a usage error (exit 2) naming what to pass instead.
 */
export async function resolveSourceRoot(dir: string, kinds: readonly KindDescriptor[]): Promise<string> {
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
  const folders = [...new Set(kinds.flatMap((k) => k.folders))];
  for (const folder of folders) if (await has(folder)) return root;
  const hints: string[] = [];
  if (await has('data')) hints.push(`did you mean ${path.join(dir, 'data')}?`);
  if (folders.includes(path.basename(root))) hints.push(`did you mean its parent ${path.dirname(dir)}?`);
  throw new PgFerryError(
    'CONFIG_ERROR',
    `--from ${JSON.stringify(dir)} has no ${folders.map((f) => `${f}/`).join(' or ')} folder: pass the app's data directory (the one that contains ${folders[0]}/)` +
      (hints.length > 0 ? `; ${hints.join(' ')}` : ''),
  );
}

/** The key a path names when a symlink or stat problem stops it being read: the file name without `.json`. */
const keyFromName = (name: string): string | null => (name.endsWith('.json') ? name.slice(0, -'.json'.length) : null);

/** One directory's entries, symlinks resolved within the root; problems recorded. */
async function listDir(
  root: string,
  absDir: string,
  relDir: string,
  problem: (p: Omit<SourceProblem, 'kind'>) => void,
  visited: Set<string>,
): Promise<WalkEntry[]> {
  let names: string[];
  try {
    names = (await fs.readdir(absDir)).sort();
  } catch (error) {
    problem({ rel: relDir, key: null, reason: `cannot read directory: ${(error as NodeJS.ErrnoException).code}`, severity: 'error' });
    return [];
  }
  const out: WalkEntry[] = [];
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
          problem({ rel, key: keyFromName(name), reason: 'broken symlink: not followed', severity: 'error' });
          continue;
        }
        if (target !== root && !target.startsWith(root + path.sep)) {
          problem({ rel, key: keyFromName(name), reason: 'symlink leads outside --from: not followed', severity: 'error' });
          continue;
        }
        stat = await fs.stat(target);
        if (stat.isDirectory()) {
          if (visited.has(target)) continue; // a loop, or a second way into a directory already read
          visited.add(target);
        }
      }
    } catch (error) {
      // Gone between readdir and stat: the app deleted or renamed it meanwhile (a record it removed, or its
      // own temp or lock file). Not a record of this pass, so not a problem either.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      problem({ rel, key: keyFromName(name), reason: `cannot stat: ${(error as NodeJS.ErrnoException).code}`, severity: 'error' });
      continue;
    }
    out.push({ name, abs, rel, type: stat.isDirectory() ? 'dir' : stat.isFile() ? 'file' : 'other', size: stat.size });
  }
  return out;
}

/** A top-level folder's entries; nothing when it does not exist. */
async function listFolder(
  root: string,
  name: string,
  problem: (p: Omit<SourceProblem, 'kind'>) => void,
  visited: Set<string>,
): Promise<WalkEntry[]> {
  const abs = path.join(root, name);
  visited.add(abs);
  try {
    const stat = await fs.lstat(abs);
    if (stat.isSymbolicLink()) {
      const target = await fs.realpath(abs);
      if (!target.startsWith(root + path.sep)) {
        problem({ rel: name, key: null, reason: 'symlink leads outside --from: not followed', severity: 'error' });
        return [];
      }
      return listDir(root, target, name, problem, visited);
    }
  } catch {
    return []; // the folder does not exist: nothing of this kind
  }
  return listDir(root, abs, name, problem, visited);
}

/** Where a source file is (the scan keeps only relative paths: the list is held for the whole run). */
export const sourcePath = (root: string, file: SourceFile): string => path.join(root, file.rel);

/** Temp and backup files the apps' safe-write code leaves behind: not records. */
export const isIgnorable = (name: string) => name.startsWith('.') || name.endsWith('~') || /\.(tmp|bak|swp|lock)$/i.test(name);

/** List the source files of `kinds`, kind by kind in the order given (each directory by name). No file is opened. */
export async function scanSource(root: string, kinds: readonly KindDescriptor[]): Promise<SourceScan> {
  const scan: SourceScan = { root, kinds, files: new FileList(kinds.map((k) => k.name)), problems: [], totalBytes: 0, ignored: 0 };
  const visited = new Set<string>([root]);
  for (const kind of kinds) {
    const problems: SourceProblem[] = [];
    const problem = (p: Omit<SourceProblem, 'kind'>) => problems.push({ kind: kind.name, ...p });
    const walk: KindScan = {
      root,
      folder: (name) => listFolder(root, name, problem, visited),
      list: (dir) => listDir(root, dir.abs, dir.rel, problem, visited),
      add: (entry) => {
        scan.files.push({ kind: kind.name, rel: entry.rel, size: entry.size });
        scan.totalBytes += entry.size;
      },
      ignore: () => {
        scan.ignored++;
      },
      problem,
      problems,
    };
    await kind.scan(walk);
    scan.problems.push(...problems);
  }
  return scan;
}

export interface ReadResult {
  file: SourceFile;
  /** The file's modification time (a record may default a timestamp to it). */
  mtimeMs: number;
  /** The record version: when the read began (transfer/version.ts). */
  readAtUs?: number;
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

type RawRead =
  | { file: SourceFile; mtimeMs: number; readAtUs?: number; buffer: Buffer; length: number }
  | { file: SourceFile; mtimeMs: number; error: string };

/** Bytes of files being read ahead of the one being parsed (a larger file is read alone). */
const READ_AHEAD_BYTES = 16 * 1024 * 1024;

/**
 * Read files with at most `concurrency` reads (and READ_AHEAD_BYTES) in
 * flight, yielding results in file order. A file's text is decoded only when
 * its turn comes, so it is parsed (and dropped) right away. Bytes are decoded
 * strictly: invalid UTF-8 is an error, never a silent replacement character.
 * A file over `maxFileSize` (by the scan's size, or by its size when opened)
 * is an error and is never read. Parsing is the caller's.
 */
export async function* readSourceFiles(
  root: string,
  files: Iterable<SourceFile>,
  concurrency = 8,
  maxFileSize = DEFAULT_MAX_FILE_SIZE,
): AsyncGenerator<ReadResult> {
  const buffers = new ReadBuffers();
  const tooLarge = (size: number) => tooLargeReason(size, { maxFileSize, maxDepth: 0 });
  const readFile = async (file: SourceFile): Promise<RawRead> => {
    if (file.size > maxFileSize) return { file, mtimeMs: 0, error: tooLarge(file.size) };
    let mtimeMs = 0;
    let buffer: Buffer | undefined;
    const readAtUs = sourceVersionNow();
    try {
      const handle = await fs.open(sourcePath(root, file), 'r');
      try {
        const stat = await handle.stat();
        mtimeMs = stat.mtimeMs;
        // It may have grown since the scan.
        if (stat.size > maxFileSize) return { file, mtimeMs, error: tooLarge(stat.size) };
        buffer = buffers.take(stat.size);
        let length = 0;
        while (length < stat.size) {
          const { bytesRead } = await handle.read(buffer, length, stat.size - length, length);
          if (bytesRead === 0) break;
          length += bytesRead;
        }
        return { file, mtimeMs, readAtUs, buffer, length };
      } finally {
        await handle.close();
      }
    } catch (error) {
      if (buffer) buffers.give(buffer);
      return { file, mtimeMs, error: `cannot read file: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` };
    }
  };
  const reads = mapOrdered(files, concurrency, readFile, { max: READ_AHEAD_BYTES, weight: (file) => file.size });
  for await (const read of reads) {
    if ('error' in read) {
      yield read;
      continue;
    }
    const result = decode(read);
    buffers.give(read.buffer);
    yield result;
  }
}

/**
 * Fast native decoding; only a file that then shows U+FFFD (rare) is decoded
 * again strictly, to tell a real U+FFFD from invalid bytes. A text longer than
 * V8's largest string (about 512 M characters) is an error of that file.
 */
function decode(read: Extract<RawRead, { buffer: Buffer }>): ReadResult {
  const bytes = read.buffer.subarray(0, read.length);
  const failed = (error: string): ReadResult => ({ file: read.file, mtimeMs: read.mtimeMs, error });
  let text: string;
  try {
    text = bytes.toString('utf8');
  } catch {
    return failed(`file is ${formatBytes(read.length)}: too large to hold as text`);
  }
  if (!text.includes('\ufffd')) return { file: read.file, mtimeMs: read.mtimeMs, readAtUs: read.readAtUs, text };
  try {
    return { file: read.file, mtimeMs: read.mtimeMs, readAtUs: read.readAtUs, text: utf8.decode(bytes) };
  } catch {
    return failed('file is not valid UTF-8');
  }
}
