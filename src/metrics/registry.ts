import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Database, Sql } from '../db/database.ts';
import { errorCode } from '../db/database.ts';
import { Journal } from '../store/modes/journal.ts';
import { listSyncStates } from '../sync/state.ts';

/**
 * The Prometheus metrics of one server (docs/admin.md lists them). One
 * registry per app, not prom-client's global one: tests build many apps in
 * one process. Values that live in the database (run counters) or in the
 * Database object (pool, slow queries) are read when scraped.
 */

export interface Metrics {
  readonly registry: Registry;
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  readonly storeDuration: Histogram<'repository' | 'operation' | 'backend' | 'outcome'>;
  /** Read from the dual-write journal under DATA_DIR at scrape time, per repository. */
  readonly journalDepth: Gauge<'repository'>;
  /** Read from sync_state at scrape time, per followed source directory. */
  readonly syncLag: Gauge<'source'>;
}

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface MetricsOptions {
  /** The store's database (postgres backend); without it the pool and run metrics are absent. */
  db?: Database | undefined;
  /** DATA_DIR, where the dual-write journal lives; without it the journal gauge stays empty. */
  dataDir?: string | undefined;
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  const registers = [registry];
  const metrics: Metrics = {
    registry,
    httpDuration: new Histogram({
      name: 'pgferry_http_request_duration_seconds',
      help: 'HTTP request duration by method, route pattern and status code',
      labelNames: ['method', 'route', 'status'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    storeDuration: new Histogram({
      name: 'pgferry_store_operation_duration_seconds',
      help: 'Store operation duration by repository, operation, backend and outcome (ok or error)',
      labelNames: ['repository', 'operation', 'backend', 'outcome'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    journalDepth: new Gauge({
      name: 'pgferry_journal_depth',
      help: 'Dual-write journal entries not yet applied to PostgreSQL, per repository (STORAGE_MODE=dual / postgres-fallback)',
      labelNames: ['repository'],
      registers,
      async collect() {
        this.reset();
        if (!options.dataDir) return;
        const pending = await new Journal(options.dataDir).pending().catch(() => ({ entries: [] }));
        const depth = new Map<string, number>();
        // An entry names the transfer kind of its record file, which is the repository's name.
        for (const entry of pending.entries) depth.set(entry.kind, (depth.get(entry.kind) ?? 0) + 1);
        for (const [repository, count] of depth) this.set({ repository }, count);
      },
    }),
    syncLag: new Gauge({
      name: 'pgferry_sync_lag_seconds',
      help: 'pgferry sync lag per followed source directory: age of the oldest change not yet copied, else the lag of the last change (from sync_state)',
      labelNames: ['source'],
      registers,
      async collect() {
        this.reset();
        if (!options.db) return;
        const states = await listSyncStates(options.db.sql).catch(() => []);
        for (const state of states) if (state.lagSeconds !== null) this.set({ source: state.sourceDir }, state.lagSeconds);
      },
    }),
  };
  if (options.db) registerDatabaseMetrics(registry, options.db);
  return metrics;
}

function registerDatabaseMetrics(registry: Registry, db: Database): void {
  const registers = [registry];
  new Gauge({
    name: 'pgferry_db_pool_connections',
    help: 'Connection pool: max (configured size), in_use (statements running), waiting (work queued for a connection), idle (open idle connections of this application_name, server view)',
    labelNames: ['state'],
    registers,
    async collect() {
      const pool = db.poolStats();
      this.set({ state: 'max' }, pool.max);
      this.set({ state: 'in_use' }, pool.inUse);
      this.set({ state: 'waiting' }, pool.waiting);
      const idle = await idleConnections(db).catch(() => undefined);
      if (idle !== undefined) this.set({ state: 'idle' }, idle);
    },
  });
  new Counter({
    name: 'pgferry_db_slow_queries_total',
    help: 'Statements slower than SLOW_QUERY_MS since the process started',
    registers,
    collect() {
      this.reset();
      this.inc(db.counters.slow);
    },
  });
  new Counter({
    name: 'pgferry_db_queries_total',
    help: 'Units of SQL work run since the process started (retries included)',
    registers,
    collect() {
      this.reset();
      this.inc(db.counters.queries);
    },
  });
  const runs = new Counter({
    name: 'pgferry_runs_total',
    help: 'Recorded runs (import, verify, sync, files-move, files-reconcile, archive, archive-restore) by status, from the run history',
    labelNames: ['command', 'status'],
    registers,
  });
  new Counter({
    name: 'pgferry_run_records_total',
    help: 'Records handled by finished runs, by command, kind and count (read, inserted, updated, unchanged, rejected, …), from the run history',
    labelNames: ['command', 'kind', 'count'],
    registers,
    async collect() {
      this.reset();
      runs.reset();
      const history = await runTotals(db.sql).catch(() => undefined);
      for (const row of history?.runs ?? []) runs.inc({ command: row.command, status: row.status }, row.n);
      for (const row of history?.records ?? []) this.inc({ command: row.command, kind: row.kind, count: row.field }, row.n);
    },
  });
}

/** Idle connections the server sees for this pool's application_name (a scrape must stay cheap: one catalog query). */
async function idleConnections(db: Database): Promise<number> {
  const [row] = await db.sql<{ n: number }[]>`
    select count(*)::int as n from pg_stat_activity
     where datname = current_database() and application_name = current_setting('application_name') and state = 'idle'`;
  return row?.n ?? 0;
}

async function runTotals(sql: Sql) {
  try {
    const runs = await sql<{ command: string; status: string; n: number }[]>`
      select command, status, count(*)::int as n from runs group by command, status`;
    const records = await sql<{ command: string; kind: string; field: string; n: number }[]>`
      select r.command, k.key as kind, f.key as field, sum((f.value)::numeric)::bigint as n
        from runs r, jsonb_each(r.counts) k, jsonb_each(k.value) f
       where r.finished_at is not null and jsonb_typeof(f.value) = 'number'
       group by 1, 2, 3`;
    return { runs, records };
  } catch (error) {
    if (errorCode(error) === '42P01') return { runs: [], records: [] };
    throw error;
  }
}
