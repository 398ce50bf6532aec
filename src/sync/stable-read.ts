import fs from 'node:fs/promises';
import { parseDocument } from '../transfer/validate.ts';

/**
 * Reading a file another process may be writing right now, without a lock.
 *
 * The seed apps save with `open(path, 'w')` + `json.dump`: the file is
 * truncated, then written in chunks, then closed; no temporary file, no
 * rename. A reader can meet it empty, half written, or change under it.
 * A read counts only when:
 *   - the file's identity, size and mtime are the same before and after the
 *     read (nothing wrote during it), and
 *   - the bytes parse as one JSON document (a prefix of an object never does).
 * Otherwise the caller retries a little later. A file that stays unparseable
 * while untouched for `giveUpMs` is really broken: it goes to the engine,
 * which rejects it with its reason (reported, never imported).
 *
 * `quiet` says the file had not been written for `quietMs` when read. The
 * kernel stamps mtime from a coarse clock (a few ms), so two writes of the
 * same size within one tick look alike; once a file has been quiet for longer
 * than a tick, any later write changes its mtime, and (size, mtime) is a
 * sound "unchanged since" test for the rescan and for a restart.
 */

export interface FileStamp {
  size: number;
  /** Modification time in nanoseconds (bigint precision). */
  mtimeNs: bigint;
  ino: bigint;
}

export type StableRead =
  | { status: 'ok'; bytes: Buffer; stamp: FileStamp; mtimeMs: number; quiet: boolean }
  | { status: 'gone' }
  | { status: 'busy'; reason: string }
  | { status: 'broken'; stamp: FileStamp; reason: string };

export interface StableReadOptions {
  quietMs: number;
  /** Since when this path has been waiting (ms epoch): an unparseable file untouched this long is broken. */
  waitingSinceMs: number;
  giveUpMs: number;
  maxDepth?: number;
  now?: () => number;
}

export const sameStamp = (a: FileStamp, b: FileStamp): boolean => a.size === b.size && a.mtimeNs === b.mtimeNs && a.ino === b.ino;

async function stampOf(abs: string): Promise<FileStamp | null> {
  try {
    const stat = await fs.stat(abs, { bigint: true });
    if (!stat.isFile()) return null;
    return { size: Number(stat.size), mtimeNs: stat.mtimeNs, ino: stat.ino };
  } catch (error) {
    if (isGone(error)) return null;
    throw error;
  }
}

const isGone = (error: unknown) => ['ENOENT', 'ENOTDIR'].includes((error as NodeJS.ErrnoException).code ?? '');

export async function readStable(abs: string, options: StableReadOptions): Promise<StableRead> {
  const now = options.now ?? Date.now;
  const before = await stampOf(abs);
  if (before === null) return { status: 'gone' };
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(abs);
  } catch (error) {
    if (isGone(error)) return { status: 'gone' };
    throw error;
  }
  const after = await stampOf(abs);
  if (after === null) return { status: 'gone' };
  if (!sameStamp(before, after) || bytes.length !== after.size) return { status: 'busy', reason: 'written while being read' };
  const mtimeMs = Number(after.mtimeNs / 1_000_000n);
  const parsed = parseDocument(bytes.toString('utf8'), options.maxDepth);
  if (!parsed.ok) {
    // Mid-write (empty or a prefix), or broken for good: only time tells them apart.
    const untouchedFor = now() - mtimeMs;
    if (untouchedFor >= options.giveUpMs && now() - options.waitingSinceMs >= options.giveUpMs)
      return { status: 'broken', stamp: after, reason: parsed.reason };
    return { status: 'busy', reason: `not a complete JSON document yet (${parsed.reason})` };
  }
  return { status: 'ok', bytes, stamp: after, mtimeMs, quiet: now() - mtimeMs >= options.quietMs };
}
