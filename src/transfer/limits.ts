import { formatBytes, MAX_JSON_DEPTH, MiB } from '../domain/limits.ts';

/**
 * What one source file may be before the transfer refuses it, checked before
 * the work that would fail on it: the size from the scan's stat, before the
 * file is read; the depth by a linear scan of the text (formats/json-depth.ts),
 * before anything recursive (JSON.parse, the canonical hash, PostgreSQL's
 * jsonb input) sees it. A file over a limit is one rejected record with a
 * reason naming the limit and its flag; the run goes on.
 */

export interface TransferLimits {
  /** Bytes; a larger file is rejected without being read (--max-file-size). */
  maxFileSize: number;
  /** Levels of array/object nesting; deeper text is rejected before parsing (--max-depth). */
  maxDepth: number;
}

/**
 * Nesting the store accepts (domain/limits.ts), so nothing is imported that
 * the store could not serve or rewrite. The seed apps' files nest fewer than
 * 10 levels; PostgreSQL's jsonb input runs out of stack somewhere past 10,000
 * (it depends on max_stack_depth) and V8's JSON.parse past about 30,000.
 */
export const DEFAULT_MAX_DEPTH = MAX_JSON_DEPTH;

/**
 * Larger than any conversation the store accepts, so no file the app could
 * have written is refused, while a stray or hostile file (a 700 MB log named
 * *.json) costs nothing: it is never read.
 */
export const DEFAULT_MAX_FILE_SIZE = 64 * MiB;

/**
 * The largest --max-file-size: a file is held as one string, and V8 refuses
 * strings past 2^29 - 24 characters; reading also needs about 4 times the
 * file in memory (docs/migrating.md).
 */
export const MAX_FILE_SIZE_CEILING = 256 * MiB;

export const DEFAULT_LIMITS: TransferLimits = { maxFileSize: DEFAULT_MAX_FILE_SIZE, maxDepth: DEFAULT_MAX_DEPTH };

/** `1048576`, `64MiB`, `64MB`, `512k`, `1G` → bytes (binary units: MB = MiB); NaN when not a size. */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(?:([kmg])i?b?|b)?\s*$/i.exec(text);
  if (!match) return Number.NaN;
  const unit = { k: 1024, m: MiB, g: 1024 * MiB }[(match[2] ?? '').toLowerCase()] ?? 1;
  return Math.floor(Number(match[1]) * unit);
}

export const tooLargeReason = (size: number, limits: TransferLimits): string =>
  `file is ${formatBytes(size)}, over --max-file-size ${formatBytes(limits.maxFileSize)}: not read (raise --max-file-size to import it)`;

export const tooDeepReason = (limits: TransferLimits): string =>
  `JSON nested more than ${limits.maxDepth} levels deep (--max-depth ${limits.maxDepth}): not parsed`;
