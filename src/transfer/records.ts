import { createHash } from 'node:crypto';
import os from 'node:os';
import { kindNamed } from './kinds/index.ts';
import type { KindDescriptor, KindRecord, ReadSettings } from './kinds/types.ts';
import { DEFAULT_LIMITS, type TransferLimits } from './limits.ts';
import type { LoadMethod, Rejection } from './load.ts';
import { readRecordsInWorkers } from './read-workers.ts';
import { readSourceFiles, type SourceFile, type SourceScan } from './source.ts';
import { parseDocument } from './validate.ts';

/**
 * Source files → prepared records (validated, canonical hash computed, and
 * encoded for loading) or rejections, in file order. Import and verify both
 * read through here, so they accept, reject and hash exactly the same way.
 * What a record is, is its kind's business (KindDescriptor.prepare).
 */

/** What readers hand to import and verify; `kind` is the kind's name. */
export type ReadRecord =
  | { kind: string; file: SourceFile; record: KindRecord; warnings: string[] }
  | { kind: string; file: SourceFile; rejection: Rejection; warnings: string[] };

export interface ReadRecordsOptions {
  /** The source root the files' paths are relative to. */
  root: string;
  settings: ReadSettings;
  readConcurrency?: number;
  /** Encode records for this load method; null: hashes only (verify). */
  encode: LoadMethod | null;
  /** Reader threads (default: one per spare core, at most 4); 0 reads on the calling thread. */
  workers?: number;
  /** Modules of the kinds being read (KindDescriptor.module): reader threads load them. */
  kindModules: string[];
  /** Largest file and deepest nesting read (default DEFAULT_LIMITS); beyond them a file is a rejected record. */
  limits?: TransferLimits;
}

export interface Duplicate {
  key: string;
  reason: string;
  /** import_log.source for the key: the first copy. */
  source: string;
  /**
   * Set when the kind keeps duplicates (KindDescriptor.keepsDuplicates): the
   * key this copy is imported under (the first copy keeps its own), and
   * `reason` is a warning naming the mapping.
   */
  importAs?: string;
}

/**
 * A key for a kept copy, derived from its path: the same on every run (so a
 * re-import updates it and verify finds it), distinct per file, and a valid
 * record id (at most 128 characters of [A-Za-z0-9_-]).
 */
export function derivedKey(key: string, rel: string): string {
  return `${key.slice(0, 100)}-dup-${createHash('sha256').update(rel).digest('hex').slice(0, 16)}`;
}

/**
 * Files of one kind that name the same key. For a kind that keeps duplicates
 * (two users' trees with the same conversation id) the first copy in path
 * order keeps the key and the others get a derived one, each with a warning
 * naming the mapping. Otherwise every copy gets the same reason (naming all
 * of them), so the one import_log row for the key comes out the same
 * whichever copy writes it, and neither copy is imported: which one is right
 * is a person's decision.
 */
export function duplicateReasons(scan: SourceScan): Map<string, Duplicate> {
  const seen = new Set<string>();
  const duplicated = new Set<string>();
  const kinds = new Map(scan.kinds.map((k) => [k.name, k]));
  const id = (file: SourceFile) => `${file.kind}\u0000${kinds.get(file.kind)!.fileKey(file)}`;
  for (const file of scan.files) {
    const key = id(file);
    if (seen.has(key)) duplicated.add(key);
    else seen.add(key);
  }
  const reasons = new Map<string, Duplicate>();
  if (duplicated.size === 0) return reasons;
  const copies = new Map<string, SourceFile[]>();
  for (const file of scan.files) {
    const key = id(file);
    if (duplicated.has(key)) copies.set(key, [...(copies.get(key) ?? []), file]);
  }
  for (const unsorted of copies.values()) {
    const files = [...unsorted].sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
    const kind = kinds.get(files[0]!.kind)!;
    const key = kind.fileKey(files[0]!);
    const label = `${kind.keyLabel} ${JSON.stringify(key)}`;
    if (kind.keepsDuplicates && kind.isValidKey(key)) {
      const [first, ...others] = files;
      const mapped = others.map((f) => `${f.rel} as ${JSON.stringify(derivedKey(key, f.rel))}`).join(', ');
      const reason = `${label} is in ${files.length} files: ${first!.rel} keeps it; imported ${mapped}`;
      reasons.set(first!.rel, { key, reason, source: first!.rel, importAs: key });
      for (const file of others) reasons.set(file.rel, { key, reason, source: file.rel, importAs: derivedKey(key, file.rel) });
      continue;
    }
    const reason = `${label} is in ${files.length} files (${files.map((f) => f.rel).join(', ')}): neither copy imported (keep one and re-run)`;
    for (const file of files) reasons.set(file.rel, { key, reason, source: files[0]!.rel });
  }
  return reasons;
}

/**
 * Read the whole scan in file order, on reader threads when there is more
 * than one core (parsing and hashing are the CPU-heavy part of both import
 * and verify, and run beside the thread that talks to the database).
 */
export async function* readRecords(scan: SourceScan, options: Omit<ReadRecordsOptions, 'kindModules'>): AsyncGenerator<ReadRecord> {
  const duplicates = duplicateReasons(scan);
  const full: ReadRecordsOptions = { ...options, kindModules: scan.kinds.map((k) => k.module) };
  const workers = options.workers ?? Math.min(4, Math.max(1, os.availableParallelism() - 1));
  if (workers <= 0 || scan.files.length < 64) yield* readRecordsHere(scan.files, duplicates, full);
  else yield* readRecordsInWorkers(scan.files, duplicates, full, workers);
}

/** Read, validate and hash `files` on this thread. */
export async function* readRecordsHere(
  files: Iterable<SourceFile>,
  duplicates: ReadonlyMap<string, Duplicate>,
  options: ReadRecordsOptions,
): AsyncGenerator<ReadRecord> {
  const context = { settings: options.settings, encode: options.encode };
  const limits = options.limits ?? DEFAULT_LIMITS;
  for await (const read of readSourceFiles(options.root, files, options.readConcurrency ?? 8, limits.maxFileSize)) {
    const file = read.file;
    const kind = kindNamed(file.kind);
    const reject = (key: string | null, reason: string, warnings: string[] = [], source?: string): ReadRecord => ({
      kind: file.kind,
      file,
      rejection: { kind: file.kind, key, file: file.rel, reason, ...(source ? { source } : {}) },
      warnings,
    });
    const duplicate = duplicates.get(file.rel);
    if (duplicate && duplicate.importAs === undefined) {
      yield reject(duplicate.key, duplicate.reason, [], duplicate.source);
      continue;
    }
    if (read.text === undefined) {
      yield reject(keyOf(kind, file), read.error ?? 'unreadable');
      continue;
    }
    const parsed = parseDocument(read.text, limits.maxDepth);
    read.text = undefined; // the parsed value is what counts now: the text (as large as the file) may go
    if (!parsed.ok) {
      yield reject(keyOf(kind, file), parsed.reason);
      continue;
    }
    const input = { file, document: parsed.value, mtimeMs: read.mtimeMs, ...(duplicate ? { key: duplicate.importAs } : {}) };
    let prepared: ReturnType<typeof kind.prepare>;
    try {
      prepared = kind.prepare(input, context);
    } catch (error) {
      // A stack or string limit met while validating, hashing or encoding: this record's problem, not the run's.
      if (!(error instanceof RangeError)) throw error;
      yield reject(keyOf(kind, file), `cannot be read: ${error.message}`);
      continue;
    }
    if (duplicate) prepared.warnings.unshift(duplicate.reason);
    if (prepared.ok) {
      // "Apply only if newer" (version.ts): the load claims the record with the instant it was read.
      if (read.readAtUs !== undefined) prepared.record.version = read.readAtUs;
      yield { kind: file.kind, file, record: prepared.record, warnings: prepared.warnings };
    } else yield reject(prepared.key, prepared.reason, prepared.warnings);
  }
}

/** The key a file stands for before it is read (for reports of files that cannot be read or parsed). */
export function keyOf(kind: KindDescriptor, file: SourceFile): string | null {
  const key = kind.fileKey(file);
  return kind.isValidKey(key) ? key : null;
}

/**
 * Every key the source tree stands for, read or not (a file that fails to
 * parse still accounts for its key): a database record with a key outside
 * this set has lost its source.
 */
export function sourceKeys(scan: SourceScan, kind: KindDescriptor): Set<string> {
  const keys = new Set<string>();
  const duplicates = duplicateReasons(scan);
  for (const file of scan.files) {
    if (file.kind !== kind.name) continue;
    const key = duplicates.get(file.rel)?.importAs ?? keyOf(kind, file);
    if (key !== null) keys.add(key);
  }
  for (const problem of scan.problems) if (problem.kind === kind.name && problem.key !== null) keys.add(problem.key);
  return keys;
}
