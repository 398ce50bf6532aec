import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Database } from '../../db/database.ts';
import type { Logger } from '../../log.ts';
import { kindNamed } from '../../transfer/kinds/index.ts';
import { linkJobs } from '../../transfer/kinds/jobs/link.ts';
import type { KindDescriptor, KindRecord, LoadSettings } from '../../transfer/kinds/types.ts';
import { claimVersions, Loader } from '../../transfer/load.ts';
import { parseDocument } from '../../transfer/validate.ts';
import { sourceVersionNow } from '../../transfer/version.ts';

/**
 * A record the Store changed, named the way the transfer engine names it: a
 * kind (src/transfer/kinds/) and its file relative to DATA_DIR. The mirror
 * never replays a call: it copies the record's file as it is NOW, through the
 * importer's own kind code. So PostgreSQL gets exactly what `pgferry import`
 * would load (and `verify` compares), applying it again is harmless, and a
 * journal entry needs nothing but the record's name.
 */
export interface RecordRef {
  kind: string;
  /** Path below DATA_DIR, forward slashes. */
  rel: string;
}

export interface ApplyResult {
  written: number;
  unchanged: number;
  deleted: number;
  /** Files that exist but cannot be loaded (reported, never retried: `pgferry import` reports them too). */
  unreadable: number;
}

/**
 * Copy these records' files to PostgreSQL, one transaction per kind, each
 * record only if newer than what is there (Loader's version claim). A record
 * whose file is gone is deleted there. Throws when PostgreSQL fails: the
 * caller journals the refs and tries again later.
 */
export async function applyRecordFiles(
  db: Database,
  dataDir: string,
  refs: readonly RecordRef[],
  settings: LoadSettings,
  logger: Logger,
): Promise<ApplyResult> {
  const result: ApplyResult = { written: 0, unchanged: 0, deleted: 0, unreadable: 0 };
  for (const [kindName, rels] of groupByKind(refs)) {
    const kind = kindNamed(kindName);
    const records: KindRecord[] = [];
    const gone: KindRecord[] = [];
    for (const rel of rels) {
      const read = await readRecord(kind, dataDir, rel, settings);
      if (read.state === 'unreadable') {
        result.unreadable++;
        logger.warn({ kind: kindName, file: rel, reason: read.reason }, 'cutover: record file cannot be loaded into PostgreSQL');
      } else (read.state === 'record' ? records : gone).push(read.record);
    }
    if (records.length > 0) {
      const loader = new Loader(db, { settings, method: MIRROR_LOAD_METHOD });
      const batch = await loader.batch(kind, records, []);
      result.written += batch.inserted + batch.updated;
      result.unchanged += batch.unchanged;
      // A job names its submission only in its meta; `pgferry import` links them after loading (kinds/jobs/link.ts).
      if (LINKS_JOBS.has(kind.name)) await linkJobs(db);
    }
    if (gone.length > 0) result.deleted += await deleteIfNewer(db, kind, gone);
  }
  return result;
}

/** The kinds after whose load jobs may find their submission. */
const LINKS_JOBS = new Set(['jobs', 'submissions']);

function groupByKind(refs: readonly RecordRef[]): Map<string, string[]> {
  const byKind = new Map<string, Set<string>>();
  for (const ref of refs) {
    let rels = byKind.get(ref.kind);
    if (!rels) {
      rels = new Set();
      byKind.set(ref.kind, rels);
    }
    rels.add(ref.rel);
  }
  return new Map([...byKind].map(([kind, rels]) => [kind, [...rels]]));
}

/**
 * The mirror writes a few records at a time: one statement with the records
 * as a JSON parameter beats COPY there (a COPY's round trips cost about
 * 100 ms per conversation on a small write; bench/modes.ts). Import keeps COPY.
 */
const MIRROR_LOAD_METHOD = 'json' as const;

type ReadOutcome = { state: 'record' | 'gone'; record: KindRecord } | { state: 'unreadable'; reason: string };

/** Read one record file as the importer does; the version is taken before the read (transfer/version.ts). */
async function readRecord(kind: KindDescriptor, dataDir: string, rel: string, settings: LoadSettings): Promise<ReadOutcome> {
  const file = { kind: kind.name, rel, size: 0 };
  const key = kind.fileKey(file);
  const version = sourceVersionNow();
  const abs = path.resolve(dataDir, rel);
  // A journal line is data: it never names a file outside DATA_DIR.
  if (!abs.startsWith(path.resolve(dataDir) + path.sep)) return { state: 'unreadable', reason: 'path outside DATA_DIR' };
  let bytes: Buffer;
  try {
    bytes = await readFile(abs);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'gone', record: { key, file: rel, hash: '', version } };
    return { state: 'unreadable', reason: `cannot read file: ${(error as NodeJS.ErrnoException).code ?? String(error)}` };
  }
  const parsed = parseDocument(bytes.toString('utf8'));
  if (!parsed.ok) return { state: 'unreadable', reason: parsed.reason };
  const prepared = kind.prepare(
    { file: { ...file, size: bytes.length }, document: parsed.value, mtimeMs: Date.now() },
    { settings, encode: MIRROR_LOAD_METHOD },
  );
  if (!prepared.ok) return { state: 'unreadable', reason: prepared.reason };
  const record = prepared.record;
  // The payload may be a view of the kind's scratch buffer, reused by the next record encoded: keep a copy.
  if (Buffer.isBuffer(record.payload)) record.payload = Buffer.from(record.payload);
  record.version = version;
  return { state: 'record', record };
}

/** Delete records whose file is gone, unless someone wrote a newer version of them meanwhile. */
async function deleteIfNewer(db: Database, kind: KindDescriptor, gone: KindRecord[]): Promise<number> {
  return db.transaction(`cutover.delete.${kind.name}`, async (tx) => {
    const older = await claimVersions(tx, kind, gone);
    const keys = gone.filter((r) => !older.has(r.key)).map((r) => r.key);
    if (keys.length === 0) return 0;
    await kind.load.prune(tx, keys);
    // The deletion's version is kept, so an import that read the file before it was removed cannot bring it back.
    const versions = gone.filter((r) => keys.includes(r.key)).map((r) => r.version!);
    await tx`
      update import_log l set status = 'pruned', content_hash = null, error = null, imported_at = now(), source_version = g.version
        from unnest(${keys}::text[], ${versions}::int8[]) as g(key, version)
       where l.kind = ${kind.logKind} and l.record_key = g.key`;
    return keys.length;
  });
}
