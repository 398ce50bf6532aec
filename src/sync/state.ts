import os from 'node:os';
import { type Database, errorCode, type Sql } from '../db/database.ts';
import type { KindDescriptor } from '../transfer/kinds/types.ts';
import type { FileStamp } from './stable-read.ts';

/**
 * What sync keeps in PostgreSQL (migration 0007_sync):
 * - import_log.source_size / source_mtime_ns: the stamp of the file version
 *   last loaded, so a restart reads only the files changed since;
 * - sync_state: one row per followed tree, what `pgferry cutover status` shows.
 */

/** A file sync has loaded (or rejected): its record and the stamp of the loaded version. */
export interface KnownFile {
  kind: KindDescriptor;
  /** The record key; null when the file was rejected before a key was known. */
  key: string | null;
  size: number | null;
  mtimeNs: bigint | null;
}

/** import_log rows of the selected kinds whose record is loaded or rejected (not pruned), by source path. */
export async function loadKnownFiles(db: Database, kinds: readonly KindDescriptor[]): Promise<Map<string, KnownFile>> {
  const byLogKind = new Map(kinds.map((k) => [k.logKind, k]));
  const known = new Map<string, KnownFile>();
  // As text: a nanosecond time does not fit a JS number (the pool reads int8 as one).
  await db.sql<{ kind: string; record_key: string; source: string; source_size: string | null; source_mtime_ns: string | null }[]>`
    select kind, record_key, source, source_size::text, source_mtime_ns::text from import_log
     where kind = any(${[...byLogKind.keys()]}::text[]) and status <> 'pruned'`.cursor(2000, (rows) => {
    for (const row of rows) {
      const kind = byLogKind.get(row.kind)!;
      known.set(row.source, {
        kind,
        key: row.record_key.startsWith('file:') ? null : row.record_key,
        size: row.source_size === null ? null : Number(row.source_size),
        mtimeNs: row.source_mtime_ns === null ? null : BigInt(row.source_mtime_ns),
      });
    }
  });
  return known;
}

/** Remember the stamps of the file versions just loaded (after the engine committed them). */
export async function saveStamps(db: Database, loaded: ReadonlyArray<{ rel: string; stamp: FileStamp }>): Promise<void> {
  if (loaded.length === 0) return;
  await db.run(
    'sync.stamps',
    (sql) => sql`
      update import_log l set source_size = s.size, source_mtime_ns = s.mtime_ns
        from unnest(${loaded.map((f) => f.rel)}::text[], ${loaded.map((f) => String(f.stamp.size))}::bigint[],
                    ${loaded.map((f) => String(f.stamp.mtimeNs))}::bigint[]) as s(source, size, mtime_ns)
       where l.source = s.source and l.status <> 'pruned'`,
    { idempotent: true },
  );
}

export interface SyncStateRow {
  sourceDir: string;
  following: boolean;
  lastEventAt: Date | null;
  lastScanAt: Date | null;
  lastImportAt: Date | null;
  lagMs: number | null;
  lagP50Ms: number | null;
  lagP99Ms: number | null;
  pending: number;
  oldestPendingMs: number;
  imported: number;
  deleted: number;
  errors: number;
  lastError: string | null;
}

export async function writeSyncState(db: Database, state: SyncStateRow, startedAt: Date): Promise<void> {
  await db.run(
    'sync.state',
    (sql) => sql`
      insert into sync_state (source_dir, following, pid, host, started_at, last_event_at, last_scan_at, last_import_at,
                              lag_ms, lag_p50_ms, lag_p99_ms, pending, oldest_pending_ms, imported, deleted, errors, last_error, updated_at)
      values (${state.sourceDir}, ${state.following}, ${process.pid}, ${os.hostname()}, ${startedAt}, ${state.lastEventAt},
              ${state.lastScanAt}, ${state.lastImportAt}, ${state.lagMs}, ${state.lagP50Ms}, ${state.lagP99Ms}, ${state.pending},
              ${state.oldestPendingMs}, ${state.imported}, ${state.deleted}, ${state.errors}, ${state.lastError}, now())
      on conflict (source_dir) do update set
        following = excluded.following, pid = excluded.pid, host = excluded.host, started_at = excluded.started_at,
        last_event_at = excluded.last_event_at, last_scan_at = excluded.last_scan_at, last_import_at = excluded.last_import_at,
        lag_ms = excluded.lag_ms, lag_p50_ms = excluded.lag_p50_ms, lag_p99_ms = excluded.lag_p99_ms, pending = excluded.pending,
        oldest_pending_ms = excluded.oldest_pending_ms, imported = excluded.imported, deleted = excluded.deleted,
        errors = excluded.errors, last_error = excluded.last_error, updated_at = now()`,
    { idempotent: true },
  );
}

/** A following sync writes sync_state every 5 s: one not written for this long is gone (crashed or killed). */
export const SYNC_STALE_AFTER_SECONDS = 60;

export interface SyncStatus {
  sourceDir: string;
  following: boolean;
  /** Marked following, but its row stopped moving: the process is gone. */
  stale: boolean;
  /** The lag now: the age of the oldest change still waiting, else the lag of the last change; null before any change. */
  lagSeconds: number | null;
  lagP50Ms: number | null;
  lagP99Ms: number | null;
  pending: number;
  imported: number;
  deleted: number;
  errors: number;
  lastEventAt: string | null;
  lastImportAt: string | null;
  updatedAt: string;
  lastError: string | null;
}

/** Every followed tree's sync_state, freshest first; [] before migration 0007 or on a database without it. */
export async function listSyncStates(sql: Sql): Promise<SyncStatus[]> {
  try {
    const rows = await sql<Record<string, unknown>[]>`
      select source_dir, following, lag_ms, lag_p50_ms, lag_p99_ms, pending, oldest_pending_ms, imported, deleted, errors,
             last_event_at, last_import_at, updated_at, last_error,
             following and updated_at < now() - make_interval(secs => ${SYNC_STALE_AFTER_SECONDS}) as stale
        from sync_state order by updated_at desc limit 20`;
    const iso = (value: unknown) => (value instanceof Date ? value.toISOString() : value === null ? null : String(value));
    return rows.map((row) => {
      const lagMs = row.lag_ms as number | null;
      const pending = Number(row.pending);
      const waiting = pending > 0 ? Number(row.oldest_pending_ms ?? 0) : 0;
      const now = lagMs === null && pending === 0 ? null : Math.max(waiting, lagMs ?? 0);
      return {
        sourceDir: String(row.source_dir),
        following: row.following === true,
        stale: row.stale === true,
        lagSeconds: now === null ? null : now / 1000,
        lagP50Ms: row.lag_p50_ms as number | null,
        lagP99Ms: row.lag_p99_ms as number | null,
        pending,
        imported: Number(row.imported),
        deleted: Number(row.deleted),
        errors: Number(row.errors),
        lastEventAt: iso(row.last_event_at),
        lastImportAt: iso(row.last_import_at),
        updatedAt: iso(row.updated_at)!,
        lastError: row.last_error as string | null,
      };
    });
  } catch (error) {
    if (errorCode(error) === '42P01') return [];
    throw error;
  }
}
