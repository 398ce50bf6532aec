import os from 'node:os';
import { isValidRecordId, isValidUserId } from '../domain/ids.ts';
import { type PreparedConversation, type PreparedUsage, prepareConversation, prepareUsage } from './canonical.ts';
import { type ConversationLoad, encodeConversation, type LoadMethod, type Rejection } from './load.ts';
import { readRecordsInWorkers } from './read-workers.ts';
import { type ChatKind, type ChatScan, fileStem, findDuplicateKeys, readSourceFiles, type SourceFile } from './sources/chat.ts';
import { parseDocument, type ValidateOptions, validateConversation, validateUsage } from './validate.ts';

/**
 * Source files → prepared records (validated, canonical hash computed) or
 * rejections, in file order. Import and verify both read through here, so
 * they accept, reject and hash exactly the same way.
 */

type SourceRecord =
  | { kind: 'conversations'; file: SourceFile; prepared: PreparedConversation; warnings: string[] }
  | { kind: 'usage'; file: SourceFile; prepared: PreparedUsage; warnings: string[] }
  | { kind: ChatKind; file: SourceFile; rejection: Rejection; warnings: string[] };

/**
 * What readers hand to import and verify. A conversation arrives as a
 * ConversationLoad: head, hash and message count, plus its messages encoded
 * for loading (import) or an empty payload (verify only compares hashes).
 */
export type ReadRecord =
  | { kind: 'conversations'; file: SourceFile; conversation: ConversationLoad; warnings: string[] }
  | { kind: 'usage'; file: SourceFile; usage: PreparedUsage; warnings: string[] }
  | { kind: ChatKind; file: SourceFile; rejection: Rejection; warnings: string[] };

export interface ReadRecordsOptions extends ValidateOptions {
  /** The source root the files' paths are relative to. */
  root: string;
  readConcurrency?: number;
  /** Encode conversations' messages for this load method; null: hashes only (verify). */
  encode: LoadMethod | null;
  /** Reader threads (default: one per spare core, at most 4); 0 reads on the calling thread. */
  workers?: number;
}

export interface Duplicate {
  key: string;
  reason: string;
  /** import_log.source for the id: the first copy. */
  source: string;
}

/**
 * Files whose conversation id also appears in another file. Every copy gets
 * the same reason (naming all of them), so the one import_log row for the id
 * comes out the same whichever copy writes it.
 */
export function duplicateReasons(scan: ChatScan): Map<string, Duplicate> {
  const reasons = new Map<string, Duplicate>();
  for (const [key, files] of findDuplicateKeys(scan.files)) {
    const reason = `conversation id ${JSON.stringify(key)} is in ${files.length} files (${files.map((f) => f.rel).join(', ')}): neither copy imported (keep one and re-run)`;
    for (const file of files) reasons.set(file.rel, { key, reason, source: files[0]!.rel });
  }
  return reasons;
}

/** Read, validate and hash `files` on this thread. */
export async function* readRecordsHere(
  files: Iterable<SourceFile>,
  duplicates: ReadonlyMap<string, Duplicate>,
  options: ReadRecordsOptions,
): AsyncGenerator<ReadRecord> {
  for await (const record of prepareRecords(files, duplicates, options)) {
    if ('rejection' in record || record.kind === 'usage') {
      yield 'prepared' in record
        ? { kind: 'usage', file: record.file, usage: record.prepared as PreparedUsage, warnings: record.warnings }
        : record;
      continue;
    }
    const prepared = record.prepared as PreparedConversation;
    const conversation: ConversationLoad =
      options.encode === null
        ? {
            key: prepared.key,
            file: prepared.file,
            hash: prepared.hash,
            row: prepared.row,
            messageCount: prepared.messages.length,
            payload: '',
          }
        : encodeConversation(prepared, options.encode);
    yield { kind: 'conversations', file: record.file, conversation, warnings: record.warnings };
  }
}

/**
 * Read the whole scan in file order, on reader threads when there is more
 * than one core (parsing and hashing are the CPU-heavy part of both import
 * and verify, and run beside the thread that talks to the database).
 */
export async function* readChatRecords(scan: ChatScan, options: ReadRecordsOptions): AsyncGenerator<ReadRecord> {
  const duplicates = duplicateReasons(scan);
  const workers = options.workers ?? Math.min(4, Math.max(1, os.availableParallelism() - 1));
  if (workers <= 0 || scan.files.length < 64) yield* readRecordsHere(scan.files, duplicates, options);
  else yield* readRecordsInWorkers(scan.files, duplicates, options, workers);
}

async function* prepareRecords(
  files: Iterable<SourceFile>,
  duplicates: ReadonlyMap<string, Duplicate>,
  options: ReadRecordsOptions,
): AsyncGenerator<SourceRecord> {
  for await (const read of readSourceFiles(options.root, files, options.readConcurrency ?? 8)) {
    const file = read.file;
    const reject = (key: string | null, reason: string, warnings: string[] = [], source?: string): SourceRecord => ({
      kind: file.kind,
      file,
      rejection: { kind: file.kind, key, file: file.rel, reason, ...(source ? { source } : {}) },
      warnings,
    });
    const duplicate = duplicates.get(file.rel);
    if (duplicate) {
      yield reject(duplicate.key, duplicate.reason, [], duplicate.source);
      continue;
    }
    if (read.text === undefined) {
      yield reject(keyOf(file), read.error ?? 'unreadable');
      continue;
    }
    const parsed = parseDocument(read.text);
    if (!parsed.ok) {
      yield reject(keyOf(file), parsed.reason);
      continue;
    }
    if (file.kind === 'conversations') {
      const result = validateConversation(file, parsed.value, options, read.mtimeMs);
      if (!result.ok) {
        yield reject(result.key, result.reason, result.warnings);
        continue;
      }
      const prepared = prepareConversation(result.row, file.rel, file.size);
      if (typeof prepared === 'string') yield reject(result.key, prepared, result.warnings);
      else yield { kind: 'conversations', file, prepared, warnings: result.warnings };
    } else {
      const result = validateUsage(file, parsed.value);
      if (!result.ok) yield reject(result.key, result.reason, result.warnings);
      else yield { kind: 'usage', file, prepared: prepareUsage(result.row, file.rel, file.size), warnings: result.warnings };
    }
  }
}

/** The key a file stands for before it is read (for reports of files that cannot be read or parsed). */
export function keyOf(file: SourceFile): string | null {
  const stem = fileStem(file);
  return (file.kind === 'usage' ? isValidUserId(stem) : isValidRecordId(stem)) ? stem : null;
}

/**
 * Every key the source tree stands for, read or not (a file that fails to
 * parse still accounts for its key): a database record with a key outside
 * this set has lost its source.
 */
export function sourceKeys(scan: ChatScan, kind: ChatKind): Set<string> {
  const keys = new Set<string>();
  for (const file of scan.files) {
    if (file.kind !== kind) continue;
    const key = keyOf(file);
    if (key !== null) keys.add(key);
  }
  for (const problem of scan.problems) if (problem.kind === kind && problem.key !== null) keys.add(problem.key);
  return keys;
}
