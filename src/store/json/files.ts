import { randomBytes } from 'node:crypto';
import { type FileHandle, mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatBytes, MAX_DATA_FILE_BYTES } from '../../domain/limits.ts';
import { PgFerryError } from '../../errors.ts';
import { jsonParseReason } from '../../formats/json-error.ts';
import { parseJsonText, stringifyJsonText } from '../../formats/json-text.ts';
import { errorCode, ioError, isProcessAlive, type LockOptions, withKeyedMutex, withLockFile } from './locks.ts';

/**
 * Safe-write primitives of the JSON backend (DESIGN section 4).
 *
 * A file is only ever replaced whole: unique temp file in the same directory
 * → write → fsync file → rename over the target → fsync the directory. A
 * reader therefore sees the old or the new content, never a torn file, and
 * needs no lock. A crash leaves at most a `.…tmp` file, which readers ignore
 * (only `*.json` names not starting with a dot are data) and the store
 * removes when it next opens (removeStaleTempFiles).
 *
 * Files are read and written as Python's json module does (bare NaN and
 * Infinity, optional BOM), since the seed apps wrote them.
 */

export { type LockOptions, withKeyedMutex, withLockFile } from './locks.ts';

/** Indentation of written files, as the seed app's `json.dump(..., indent=2)`. */
const INDENT = 2;

/**
 * Files whose compact text is larger than this are written compactly:
 * indenting is a second full serialisation, and deep stage data indented
 * grows ~6× (two spaces per level on every line).
 */
const INDENT_UP_TO_CHARS = 1024 * 1024;

/**
 * A file's text: indented as the seed app writes it when that stays within
 * 2× of the compact text and the document is small, else compact — still
 * JSON the app reads. So a file on disk is at most 2× its content, and
 * exactly its content once it is past 1 MiB (docs/storage.md).
 */
export function fileText(value: unknown): string {
  const compact = stringifyJsonText(value);
  if (compact.length > INDENT_UP_TO_CHARS) return compact;
  const indented = stringifyJsonText(value, INDENT);
  return indented.length <= 2 * compact.length ? indented : compact;
}

/** Is this directory entry a data file (not a temp, lock or hidden file)? */
export function isDataFileName(name: string): boolean {
  return name.endsWith('.json') && !name.startsWith('.');
}

/** Parsed content of a JSON file, or undefined when it does not exist; a file that does not parse is CORRUPT_DATA. */
export async function readJsonFile(filePath: string): Promise<unknown> {
  return (await readJsonFileStat(filePath))?.value;
}

/**
 * Waits before re-reading a file that does not parse. The seed apps write
 * with a plain open('w') + json.dump: a reader can see an empty or half-written
 * file for a moment. ~0.5 s in all, then the file is CORRUPT_DATA.
 */
const REREAD_DELAYS_MS = [25, 50, 100, 150, 175];

/** Parsed content and modification time of a JSON file; undefined when it does not exist. */
export async function readJsonFileStat(filePath: string): Promise<{ value: unknown; mtimeMs: number } | undefined> {
  for (let attempt = 0; ; attempt++) {
    const read = await readTextStat(filePath);
    if (read === undefined) return undefined;
    try {
      return { value: parseDataFile(read.text, filePath), mtimeMs: read.mtimeMs };
    } catch (error) {
      const delay = REREAD_DELAYS_MS[attempt];
      if (delay === undefined) throw error;
      await sleep(delay);
    }
  }
}

async function readTextStat(filePath: string): Promise<{ text: string; mtimeMs: number } | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(filePath, 'r');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined;
    throw ioError('read', filePath, error);
  }
  try {
    const stat = await handle.stat();
    // Checked before reading: a file no store could have written is not loaded into memory at all.
    if (stat.size > MAX_DATA_FILE_BYTES) {
      throw corruptFile(filePath, `the file is ${stat.size} bytes, over the limit of ${formatBytes(MAX_DATA_FILE_BYTES)}`);
    }
    return { text: await handle.readFile('utf8'), mtimeMs: stat.mtimeMs };
  } catch (error) {
    if (error instanceof PgFerryError) throw error;
    throw ioError('read', filePath, error);
  } finally {
    await handle.close();
  }
}

/** Parse a data file's text; CORRUPT_DATA naming the file and where it breaks (never its contents). */
function parseDataFile(text: string, filePath: string): unknown {
  try {
    return parseJsonText(text);
  } catch (error) {
    throw corruptFile(filePath, jsonParseReason(error, text));
  }
}

export function corruptFile(filePath: string, reason: string): PgFerryError {
  return new PgFerryError('CORRUPT_DATA', `corrupt data file ${filePath}: ${reason}; it is left untouched — repair or move it aside`, {
    path: filePath,
  });
}

/** `.<name>.<pid>.<12 hex>.tmp`, as writeJsonFileAtomic names its temp files. */
const TEMP_FILE = /^\.(.+)\.(\d+)\.[0-9a-f]{12}\.tmp$/;

/**
 * A temp file older than this is stale even when its pid is alive: the pid
 * may have been reused (in a container every run is pid 1), and no write
 * takes minutes.
 */
export const STALE_TEMP_AGE_MS = 10 * 60_000;

/** Is this temp file left behind by a writer that can no longer finish (killed, or long gone)? */
export function isStaleTempFile(name: string, mtimeMs: number, now = Date.now()): boolean {
  const match = TEMP_FILE.exec(name);
  if (!match) return false;
  const pid = Number(match[2]);
  if (now - mtimeMs > STALE_TEMP_AGE_MS) return true;
  return pid !== process.pid && !isProcessAlive(pid);
}

/**
 * Remove the temp files a killed writer left (kill -9 between write and
 * rename) in DATA_DIR and the folders below it, down to `depth` levels
 * (conversations/<user>/, usage/<user>/). A live writer's temp file is kept:
 * its pid is alive and the file is young. Returns the paths removed.
 */
export async function removeStaleTempFiles(dir: string, depth = 2, now = Date.now()): Promise<string[]> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return []; // absent or unreadable: nothing to clean here
  }
  const removed: string[] = [];
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory() && depth > 0) removed.push(...(await removeStaleTempFiles(full, depth - 1, now)));
    else if (entry.isFile() && TEMP_FILE.test(entry.name)) {
      const mtimeMs = await stat(full).then(
        (s) => s.mtimeMs,
        () => undefined,
      );
      if (mtimeMs === undefined || !isStaleTempFile(entry.name, mtimeMs, now)) continue;
      await unlink(full).then(
        () => removed.push(full),
        () => undefined, // renamed or removed meanwhile
      );
    }
  }
  return removed;
}

/** Replace `filePath` atomically and durably with `value` (caller holds the locks; see `update`). */
export async function writeJsonFileAtomic(filePath: string, value: unknown, modifiedAt?: Date): Promise<void> {
  const dir = path.dirname(filePath);
  await ensureDir(dir);
  const temp = path.join(dir, `.${path.basename(filePath)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeAndSync(temp, fileText(value), modifiedAt);
    await rename(temp, filePath);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw ioError('write', filePath, error);
  }
  await syncDir(dir);
}

async function writeAndSync(filePath: string, text: string, modifiedAt?: Date): Promise<void> {
  const handle = await open(filePath, 'wx', 0o644);
  try {
    await handle.writeFile(text, 'utf8');
    if (modifiedAt) await handle.utimes(modifiedAt, modifiedAt);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Remove a file durably; absent is fine. */
export async function removeFile(filePath: string): Promise<void> {
  try {
    await unlink(filePath);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return;
    throw ioError('delete', filePath, error);
  }
  await syncDir(path.dirname(filePath));
}

/** fsync a directory so a rename or unlink in it survives a power loss. */
export async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw ioError('sync directory', dir, error);
  }
}

/** mkdir -p, then fsync the parents of every directory it created so the new entries are durable too. */
export async function ensureDir(dir: string): Promise<void> {
  let first: string | undefined;
  try {
    first = await mkdir(dir, { recursive: true });
  } catch (error) {
    throw ioError('create directory', dir, error);
  }
  if (first === undefined) return;
  // New entries live in dirname(first) … dirname(dir); `dir` itself is synced by the write that follows.
  const top = path.dirname(path.resolve(first));
  for (let current = path.dirname(path.resolve(dir)); ; current = path.dirname(current)) {
    await syncDir(current);
    if (current === top || current === path.dirname(current)) break;
  }
}

/** Sentinel for `update`: delete the file. */
export const REMOVE: unique symbol = Symbol('remove');

export interface UpdateOutcome<R> {
  /** New content; `undefined` leaves the file as it is, `REMOVE` deletes it. */
  next?: unknown;
  result: R;
  /**
   * The file's modification time once written (default: now). The store sets
   * it to its clock's "now": a file's mtime says when it last changed (the
   * chat app's files carry no updated_at), so it must follow the same clock.
   */
  modifiedAt?: Date;
  /** Runs once the file is written, still under both locks (e.g. the change's audit entry). */
  afterWrite?: () => Promise<void>;
}

/**
 * Read-modify-write one file under both locks. `fn` gets the parsed content
 * (undefined when absent). A corrupt file fails with CORRUPT_DATA before `fn`
 * runs, so it is never overwritten.
 */
export async function update<R>(
  filePath: string,
  fn: (current: unknown, mtimeMs: number) => UpdateOutcome<R> | Promise<UpdateOutcome<R>>,
  options: LockOptions = {},
): Promise<R> {
  return withKeyedMutex(filePath, async () => {
    await ensureDir(path.dirname(filePath)); // the lock file lives next to the data file
    return withLockFile(
      filePath,
      async () => {
        const read = await readJsonFileStat(filePath);
        const outcome = await fn(read?.value, read?.mtimeMs ?? 0);
        if (outcome.next === REMOVE) await removeFile(filePath);
        else if (outcome.next !== undefined) await writeJsonFileAtomic(filePath, outcome.next, outcome.modifiedAt);
        if (outcome.afterWrite) await outcome.afterWrite();
        return outcome.result;
      },
      options,
    );
  });
}
