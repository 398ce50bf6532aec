import { randomBytes } from 'node:crypto';
import { link, open, readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { PgFerryError } from '../../errors.ts';

/**
 * The two locks that make a read-modify-write of one JSON file safe:
 *
 * - an in-process keyed mutex (one queue per file path), so callers in this
 *   process never race each other and never poll;
 * - a cross-process lock file `<file>.lock`, created with O_EXCL, so other
 *   processes on the same host (a second server, a CLI import) wait too.
 *
 * A lock file left by a crashed process is recognised as stale when its pid
 * is no longer alive (same host) or when it has not been touched for
 * `staleMs` (a live holder refreshes its mtime, so only a hung or foreign
 * holder ages out). Waiting is bounded: after `waitMs` the caller gets an
 * UNAVAILABLE error naming the lock file and its holder instead of a hang.
 * Waiters announce themselves in `<file>.lock.wait`, and a process about to
 * take a free lock stands back briefly when someone else is waiting, so one
 * busy process cannot starve the others.
 */

export interface LockOptions {
  /** How long to wait for another process's lock before giving up (ms). */
  waitMs?: number;
  /** A lock file untouched this long is stale even if its pid looks alive (ms). */
  staleMs?: number;
}

export const DEFAULT_LOCK_WAIT_MS = 15_000;
export const DEFAULT_LOCK_STALE_MS = 5_000;

// ---------------------------------------------------------------- in-process

/** Module-wide, so two stores opened on the same DATA_DIR in one process share the queue. */
const queueTails = new Map<string, Promise<void>>();

/** Run `fn` once every earlier caller with the same key has finished. */
export async function withKeyedMutex<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const previous = queueTails.get(key) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((resolve) => {
    release = resolve;
  });
  const tail = previous.then(() => mine);
  queueTails.set(key, tail);
  await previous;
  try {
    return await fn();
  } finally {
    release();
    // Drop the entry when nobody queued behind us, so the map does not grow per file ever touched.
    if (queueTails.get(key) === tail) queueTails.delete(key);
  }
}

// ------------------------------------------------------------- cross-process

interface LockOwner {
  pid: number;
  host: string;
  token: string;
  acquiredAt: string;
}

const HOST = os.hostname();

/** Hold the lock file for `filePath` while `fn` runs. */
export async function withLockFile<T>(filePath: string, fn: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  const lockPath = `${filePath}.lock`;
  const staleMs = options.staleMs ?? DEFAULT_LOCK_STALE_MS;
  const token = await acquireLockFile(lockPath, options.waitMs ?? DEFAULT_LOCK_WAIT_MS, staleMs);
  const heartbeat = startHeartbeat(lockPath, staleMs);
  try {
    return await fn();
  } finally {
    clearInterval(heartbeat);
    await releaseLockFile(lockPath, token);
  }
}

/** Longest pause between polls of a busy lock file (ms). */
const MAX_POLL_MS = 10;
/** How long a process that could take the lock at once stands back for announced waiters (ms): longer than one poll. */
const YIELD_MS = 2 * MAX_POLL_MS;

async function acquireLockFile(lockPath: string, waitMs: number, staleMs: number): Promise<string> {
  const owner: LockOwner = { pid: process.pid, host: HOST, token: randomBytes(12).toString('hex'), acquiredAt: '' };
  const deadline = Date.now() + waitMs;
  // Fairness: a process with a queue of writes to this file would otherwise re-take the lock the
  // instant it releases it, and pollers in other processes could starve until they time out.
  if (await othersWaiting(lockPath)) await sleep(YIELD_MS);
  let delay = 1;
  for (let waited = false; ; waited = true) {
    owner.acquiredAt = new Date().toISOString();
    if (await tryCreateLockFile(lockPath, owner)) {
      // Clear our announcement; waiters still polling re-announce at their next poll.
      if (waited) await unlink(waitMarker(lockPath)).catch(() => undefined);
      return owner.token;
    }
    const holder = await inspectLockFile(lockPath, staleMs);
    if (holder.stale) {
      await breakStaleLock(lockPath, holder.raw);
      continue;
    }
    if (Date.now() >= deadline) {
      // Other waiters re-announce themselves at their next poll.
      await unlink(waitMarker(lockPath)).catch(() => undefined);
      throw lockTimeout(lockPath, waitMs, holder.raw);
    }
    await announceWaiting(lockPath);
    // Jittered exponential backoff: a lock is held for one file write, so start small.
    await sleep(delay + (Math.random() * delay) / 2);
    delay = Math.min(delay * 2, MAX_POLL_MS);
  }
}

/** `<file>.lock.wait`: its mtime says "a process is polling for this lock". */
const waitMarker = (lockPath: string) => `${lockPath}.wait`;

async function announceWaiting(lockPath: string): Promise<void> {
  await writeFile(waitMarker(lockPath), '').catch(() => undefined);
}

async function othersWaiting(lockPath: string): Promise<boolean> {
  try {
    return Date.now() - (await stat(waitMarker(lockPath))).mtimeMs < 2 * YIELD_MS;
  } catch {
    return false;
  }
}

async function tryCreateLockFile(lockPath: string, owner: LockOwner): Promise<boolean> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(lockPath, 'wx');
  } catch (error) {
    if (errorCode(error) === 'EEXIST') return false;
    throw ioError('create lock file', lockPath, error);
  }
  try {
    await handle.writeFile(JSON.stringify(owner));
  } catch (error) {
    // An ownerless lock would block everyone until it ages out: take it back.
    await handle.close().catch(() => undefined);
    await unlink(lockPath).catch(() => undefined);
    throw ioError('write lock file', lockPath, error);
  }
  await handle.close();
  return true;
}

interface LockInspection {
  stale: boolean;
  /** The lock file's content as read (compared again before breaking it). */
  raw: string | undefined;
}

async function inspectLockFile(lockPath: string, staleMs: number): Promise<LockInspection> {
  let raw: string;
  let mtimeMs: number;
  try {
    [raw, mtimeMs] = await Promise.all([readFile(lockPath, 'utf8'), stat(lockPath).then((s) => s.mtimeMs)]);
  } catch (error) {
    // Released between our create attempt and this read: just retry.
    if (errorCode(error) === 'ENOENT') return { stale: false, raw: undefined };
    throw ioError('read lock file', lockPath, error);
  }
  const owner = parseOwner(raw);
  const aged = Date.now() - mtimeMs > staleMs;
  // An unreadable owner means a crash between create and write; only age can tell.
  if (!owner) return { stale: aged, raw };
  const dead = owner.host === HOST && !isProcessAlive(owner.pid);
  return { stale: dead || aged, raw };
}

/**
 * Remove a stale lock without ever removing a live one: rename it aside
 * (only one breaker wins), then check that what we moved is the stale lock
 * we judged. If a new holder slipped in between, put its lock back.
 */
async function breakStaleLock(lockPath: string, judged: string | undefined): Promise<void> {
  const aside = `${lockPath}.stale-${randomBytes(6).toString('hex')}`;
  try {
    await rename(lockPath, aside);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return; // someone else broke or released it
    throw ioError('break stale lock file', lockPath, error);
  }
  const moved = await readFile(aside, 'utf8').catch(() => undefined);
  if (moved !== judged) await link(aside, lockPath).catch(() => undefined);
  await unlink(aside).catch(() => undefined);
}

async function releaseLockFile(lockPath: string, token: string): Promise<void> {
  // Only remove our own lock: if it was (wrongly) judged stale and taken over, leave the new holder's.
  const raw = await readFile(lockPath, 'utf8').catch(() => undefined);
  if (raw === undefined || parseOwner(raw)?.token !== token) return;
  await unlink(lockPath).catch(() => undefined);
}

/** Refresh the lock's mtime while held, so a long write is not mistaken for a crash. */
function startHeartbeat(lockPath: string, staleMs: number): NodeJS.Timeout {
  const timer = setInterval(
    () => {
      const now = new Date();
      utimes(lockPath, now, now).catch(() => undefined);
    },
    Math.max(50, Math.floor(staleMs / 3)),
  );
  timer.unref();
  return timer;
}

function parseOwner(raw: string): LockOwner | undefined {
  try {
    const value = JSON.parse(raw) as Partial<LockOwner>;
    if (typeof value.pid === 'number' && typeof value.host === 'string' && typeof value.token === 'string') return value as LockOwner;
  } catch {
    // empty or torn: handled by the caller
  }
  return undefined;
}

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return errorCode(error) === 'EPERM';
  }
}

function lockTimeout(lockPath: string, waitMs: number, raw: string | undefined): PgFerryError {
  const owner = raw ? parseOwner(raw) : undefined;
  const held = owner ? ` held by pid ${owner.pid} on ${owner.host} since ${owner.acquiredAt}` : '';
  return new PgFerryError(
    'UNAVAILABLE',
    `timed out after ${waitMs} ms waiting for lock file ${lockPath}${held}; if no pgferry process is running, delete the lock file`,
    { path: lockPath, pid: owner?.pid },
  );
}

export function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/** Unexpected filesystem failure (disk full, permissions, read-only mount): a 503 naming the path. */
export function ioError(action: string, filePath: string, error: unknown): PgFerryError {
  const reason = error instanceof Error ? error.message : String(error);
  return new PgFerryError('UNAVAILABLE', `cannot ${action} ${filePath}: ${reason}`, { path: filePath }, { cause: error });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
