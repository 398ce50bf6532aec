import type { Database } from '../../db/database.ts';
import { digestObject } from '../../objects/digest.ts';
import type { ObjectStore } from './object-store.ts';

/**
 * `pgferry files move`: every upload whose bytes are in `from` is copied to
 * `to`, checked there, and its row switched — seed 004's S3 migration done
 * right. Per object:
 *
 *   1. its file_moves row is set to `pending` (one row per object: seed 004's
 *      s3_migration_log, read through the s3_migration_progress view);
 *   2. the bytes are streamed from `from` to `to` under the same key, their
 *      sha256 computed on the way, and read back from `to`: size and sha256
 *      must match (and match the row's sha256 when it has one);
 *   3. in one transaction the uploads row switches storage/bucket/key/URL —
 *      only if it still names the source object — and file_moves says
 *      `migrated`;
 *   4. with deleteSource, and only after that commit, the source object is
 *      deleted when no other row still names it there.
 *
 * A failed step is retried with exponential backoff; after the last attempt
 * the object is `failed` (with the error) and the run goes on. The row never
 * names an object that is not complete at its store: killed at any moment, a
 * re-run finds the rows still at the source and copies them again (the same
 * key, so each object exists once at the target); leftovers are orphans for
 * `files reconcile`. Rows already at the target are not selected: a re-run
 * after success does nothing.
 */

export interface MoveOptions {
  db: Database;
  from: ObjectStore;
  to: ObjectStore;
  /** Objects copied at once. */
  concurrency: number;
  dryRun?: boolean;
  deleteSource?: boolean;
  /** Attempts per object (first try included). */
  attempts?: number;
  /** First retry delay; doubles each time (with jitter). */
  backoffMs?: number;
  onProgress?: (state: MoveProgress) => void;
  signal?: AbortSignal;
}

export interface MoveProgress {
  objects: number;
  totalObjects: number;
  bytes: number;
  totalBytes: number;
}

export interface MoveSummary {
  selected: number;
  totalBytes: number;
  migrated: number;
  failed: number;
  /** Rows changed (deleted, replaced) while their object was being moved: left as they are. */
  skipped: number;
  bytes: number;
  sourceDeleted: number;
  elapsedMs: number;
  dryRun: boolean;
  failures: Array<{ id: string; key: string; error: string }>;
}

interface MoveRow {
  id: string;
  file_key: string;
  file_size: number;
  sha256: string | null;
  url: string | null;
  bucket: string | null;
}

const TABLE = 'uploads';

/** Rows whose bytes are in `store`: their storage kind and (for S3) bucket. */
function atStore(store: ObjectStore) {
  return { storage: store.kind, bucket: store.bucket };
}

export async function moveFiles(options: MoveOptions): Promise<MoveSummary> {
  const started = performance.now();
  const { db, from, to } = options;
  const source = atStore(from);
  const rows = await db.run(
    'files.move.select',
    (sql) => sql<MoveRow[]>`
      select id::text as id, file_key, file_size, sha256, url, bucket from uploads
       where storage = ${source.storage} and bucket is not distinct from ${source.bucket}
         and file_key is not null and status <> 'deleted'
       order by id`,
    { idempotent: true },
  );
  const summary: MoveSummary = {
    selected: rows.length,
    totalBytes: rows.reduce((n, r) => n + r.file_size, 0),
    migrated: 0,
    failed: 0,
    skipped: 0,
    bytes: 0,
    sourceDeleted: 0,
    elapsedMs: 0,
    dryRun: options.dryRun === true,
    failures: [],
  };
  if (options.dryRun || rows.length === 0) {
    summary.elapsedMs = performance.now() - started;
    return summary;
  }
  await registerMoves(db, rows, from, to);
  const progress: MoveProgress = { objects: 0, totalObjects: rows.length, bytes: 0, totalBytes: summary.totalBytes };
  options.onProgress?.(progress);

  let next = 0;
  const worker = async () => {
    while (next < rows.length && !options.signal?.aborted) {
      const row = rows[next++]!;
      const outcome = await moveWithRetries(row, options);
      if (outcome.status === 'migrated') {
        summary.migrated++;
        summary.bytes += outcome.size;
        if (outcome.sourceDeleted) summary.sourceDeleted++;
      } else if (outcome.status === 'skipped') summary.skipped++;
      else {
        summary.failed++;
        summary.failures.push({ id: row.id, key: row.file_key, error: outcome.error });
      }
      progress.objects++;
      progress.bytes += row.file_size;
      options.onProgress?.(progress);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency, rows.length)) }, worker));
  summary.elapsedMs = performance.now() - started;
  return summary;
}

/** One file_moves row per object, `pending` for this move (a row from an earlier move in the other direction starts over). */
async function registerMoves(db: Database, rows: readonly MoveRow[], from: ObjectStore, to: ObjectStore): Promise<void> {
  for (let i = 0; i < rows.length; i += 1000) {
    const batch = rows.slice(i, i + 1000);
    await db.transaction(
      'files.move.register',
      (tx) => tx`
        insert into file_moves (table_name, record_id, source_store, target_store, old_key, old_url, size, sha256, status)
        select ${TABLE}, id, ${from.kind}, ${to.kind}, k, u, s, h, 'pending' from unnest(
          ${batch.map((r) => r.id)}::text[], ${batch.map((r) => r.file_key)}::text[], ${batch.map((r) => r.url)}::text[],
          ${batch.map((r) => r.file_size)}::int8[], ${batch.map((r) => r.sha256)}::text[]) as t(id, k, u, s, h)
        on conflict (table_name, record_id) do update set
          attempts = case when file_moves.source_store = excluded.source_store and file_moves.target_store = excluded.target_store
                          then file_moves.attempts else 0 end,
          source_store = excluded.source_store, target_store = excluded.target_store,
          old_key = excluded.old_key, old_url = excluded.old_url, new_key = null, new_url = null,
          size = excluded.size, sha256 = excluded.sha256, status = 'pending', migrated_at = null`,
    );
  }
}

type Outcome = { status: 'migrated'; size: number; sourceDeleted: boolean } | { status: 'skipped' } | { status: 'failed'; error: string };

async function moveWithRetries(row: MoveRow, options: MoveOptions): Promise<Outcome> {
  const attempts = options.attempts ?? 4;
  const backoff = options.backoffMs ?? 250;
  let error = '';
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      return await moveOne(row, options);
    } catch (caught) {
      error = caught instanceof Error ? caught.message : String(caught);
      await recordAttempt(options.db, row.id, error, attempt === attempts).catch(() => {});
      if (attempt < attempts && !options.signal?.aborted) await sleep(backoff * 2 ** (attempt - 1) * (0.75 + Math.random() / 2));
    }
  }
  return { status: 'failed', error };
}

async function recordAttempt(db: Database, id: string, error: string, last: boolean): Promise<void> {
  await db.run('files.move.attempt', (sql) =>
    last
      ? sql`update file_moves set attempts = attempts + 1, error_message = ${error.slice(0, 2000)}, status = 'failed'
             where table_name = ${TABLE} and record_id = ${id}`
      : sql`update file_moves set attempts = attempts + 1, error_message = ${error.slice(0, 2000)}
             where table_name = ${TABLE} and record_id = ${id}`,
  );
}

async function moveOne(row: MoveRow, options: MoveOptions): Promise<Outcome> {
  const { db, from, to } = options;
  const key = row.file_key;
  const copied = await copyObject(from, to, key, row.sha256);
  const target = atStore(to);
  const switched = await db.transaction('files.move.switch', async (tx) => {
    const updated = await tx`
      update uploads set storage = ${target.storage}, bucket = ${target.bucket}, url = ${to.urlOf(key)},
                         file_size = ${copied.size}, sha256 = ${copied.sha256}
       where id = ${row.id} and storage = ${from.kind} and bucket is not distinct from ${from.bucket}
         and file_key = ${key} and status <> 'deleted'`;
    if (updated.count === 0) {
      await tx`update file_moves set status = 'skipped', error_message = 'the row changed during the move', attempts = attempts + 1
                where table_name = ${TABLE} and record_id = ${row.id}`;
      return false;
    }
    await tx`
      update file_moves set status = 'migrated', new_key = ${key}, new_url = ${to.urlOf(key)}, size = ${copied.size},
                            sha256 = ${copied.sha256}, attempts = attempts + 1, error_message = null, migrated_at = now()
       where table_name = ${TABLE} and record_id = ${row.id}`;
    return true;
  });
  if (!switched) return { status: 'skipped' };
  const sourceDeleted = options.deleteSource === true && (await deleteIfUnreferenced(db, from, key));
  return { status: 'migrated', size: copied.size, sourceDeleted };
}

/**
 * Copy `key` from one store to the other and check it there: the driver
 * hashes the bytes while storing them (and refuses a size or a known sha256
 * that does not match), then the object is read back from the target.
 */
export async function copyObject(
  from: ObjectStore,
  to: ObjectStore,
  key: string,
  expectedSha256: string | null,
): Promise<{ size: number; sha256: string }> {
  const head = await from.storage.head(key);
  if (!head) {
    // A killed run that had switched other rows sharing this key may have deleted it: only a known checksum proves the target copy.
    if (expectedSha256 !== null && (await to.storage.head(key))) {
      const there = await digestObject(to.storage, key);
      if (there.sha256 === expectedSha256) return there;
    }
    throw new Error(`source object ${key} is missing from ${from.kind}`);
  }
  const stored = await to.storage.put(key, await from.storage.get(key), {
    expectedSize: head.size,
    expectedSha256: expectedSha256 ?? undefined,
  });
  const there = await digestObject(to.storage, key);
  if (there.size !== stored.size || there.sha256 !== stored.sha256)
    throw new Error(`object ${key} at ${to.kind} differs from the source after the copy (${there.size} bytes)`);
  return there;
}

/** Delete the source object unless another row still names it there (the same saved_path twice). */
async function deleteIfUnreferenced(db: Database, from: ObjectStore, key: string): Promise<boolean> {
  const [row] = await db.run(
    'files.move.referenced',
    (sql) => sql<{ n: number }[]>`
      select count(*)::int as n from uploads
       where storage = ${from.kind} and bucket is not distinct from ${from.bucket} and file_key = ${key} and status <> 'deleted'`,
    { idempotent: true },
  );
  if ((row?.n ?? 0) > 0) return false;
  await from.storage.delete(key);
  return true;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
