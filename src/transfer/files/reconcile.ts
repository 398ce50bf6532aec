import type { Database } from '../../db/database.ts';
import { digestObject } from '../../objects/digest.ts';
import type { ObjectStore } from './object-store.ts';

/**
 * `pgferry files reconcile`: compare one object store with the uploads rows
 * that say their bytes are there.
 *
 * - orphan: an object no live row names (an interrupted upload, a move killed
 *   after its copy, a source left by a move without --delete-source…);
 * - missing: a row whose object is not there;
 * - different: a row whose object has another size, or (when the row has a
 *   sha256 and hashing is on) other bytes.
 *
 * With `fix`, orphans older than `graceMs` are deleted — only those: an
 * upload in flight writes its object before its row, and a move copies
 * before it switches, so a young orphan may be about to get its row. Rows are
 * never changed: a missing or different object needs a person.
 */

export interface ReconcileOptions {
  db: Database;
  store: ObjectStore;
  /** Read every object whose row has a sha256 and compare (default true). */
  hash?: boolean;
  fix?: boolean;
  graceMs: number;
  now?: number;
}

export interface ReconcileFinding {
  problem: 'orphan' | 'missing' | 'different';
  key: string;
  /** The row's id (null for an orphan). */
  id: string | null;
  reason: string;
  /** Orphans: deleted by --fix. */
  fixed?: boolean;
}

export interface ReconcileSummary {
  objects: number;
  rows: number;
  orphans: number;
  orphansDeleted: number;
  missing: number;
  different: number;
  findings: ReconcileFinding[];
  ok: boolean;
}

export async function reconcileStore(options: ReconcileOptions): Promise<ReconcileSummary> {
  const { db, store } = options;
  const now = options.now ?? Date.now();
  const rows = await db.run(
    'files.reconcile.rows',
    (sql) => sql<{ id: string; file_key: string; file_size: number; sha256: string | null }[]>`
      select id::text as id, file_key, file_size, sha256 from uploads
       where storage = ${store.kind} and bucket is not distinct from ${store.bucket}
         and file_key is not null and status <> 'deleted'`,
    { idempotent: true },
  );
  const rowsByKey = new Map<string, Array<(typeof rows)[number]>>();
  for (const row of rows) rowsByKey.set(row.file_key, [...(rowsByKey.get(row.file_key) ?? []), row]);

  const summary: ReconcileSummary = {
    objects: 0,
    rows: rows.length,
    orphans: 0,
    orphansDeleted: 0,
    missing: 0,
    different: 0,
    findings: [],
    ok: true,
  };
  const seen = new Set<string>();
  for await (const object of store.storage.list()) {
    summary.objects++;
    seen.add(object.key);
    const named = rowsByKey.get(object.key);
    if (!named) {
      summary.orphans++;
      const old = now - object.modifiedAt.getTime() >= options.graceMs;
      const finding: ReconcileFinding = {
        problem: 'orphan',
        key: object.key,
        id: null,
        reason: `${object.size} bytes, no row names it${old ? '' : ' (younger than the grace period: left alone)'}`,
      };
      if (options.fix && old) {
        await store.storage.delete(object.key);
        finding.fixed = true;
        summary.orphansDeleted++;
      }
      summary.findings.push(finding);
      continue;
    }
    let measured: { size: number; sha256: string } | undefined;
    for (const row of named) {
      if (row.file_size !== object.size && !(row.file_size === 0 && row.sha256 === null)) {
        summary.different++;
        summary.findings.push({
          problem: 'different',
          key: object.key,
          id: row.id,
          reason: `the row says ${row.file_size} bytes, the object has ${object.size}`,
        });
        continue;
      }
      if (options.hash !== false && row.sha256 !== null) {
        measured ??= await digestObject(store.storage, object.key);
        if (measured.sha256 !== row.sha256) {
          summary.different++;
          summary.findings.push({ problem: 'different', key: object.key, id: row.id, reason: 'sha256 differs from the row' });
        }
      }
    }
  }
  for (const row of rows) {
    if (seen.has(row.file_key)) continue;
    summary.missing++;
    summary.findings.push({ problem: 'missing', key: row.file_key, id: row.id, reason: `no object at ${store.kind}` });
  }
  summary.ok = summary.missing + summary.different + (summary.orphans - summary.orphansDeleted) === 0;
  return summary;
}
