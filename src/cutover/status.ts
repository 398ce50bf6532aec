import type { Config, StorageMode } from '../config.ts';
import { type Database, tableExists } from '../db/database.ts';
import { redactSecrets } from '../log.ts';
import { STORE_REPOSITORIES, storeModes, WITHOUT_CUTOVER } from '../store/modes/index.ts';
import { Journal } from '../store/modes/journal.ts';
import { readShadowFile, type ShadowCounts } from '../store/modes/shadow.ts';

/**
 * `pgferry cutover status`: where each repository stands in seed 002's five
 * phases, what could hold the next step back (journal, sync lag, shadow
 * mismatches, verify), and the next step. Everything is read from shared
 * state — files under DATA_DIR and tables in PostgreSQL — so it works from any
 * process, while the app runs.
 */

export const PHASES: Record<StorageMode, string> = {
  json: '0 json: JSON files only',
  dual: '1 dual: JSON answers, every write copied to PostgreSQL',
  'postgres-fallback': '3 postgres-fallback: PostgreSQL answers, JSON for what it lacks; writes to both',
  postgres: '4 postgres: PostgreSQL only',
};

/** A verify older than this is stale for switching reads. */
export const VERIFY_FRESH_HOURS = 24;

export interface VerifyRun {
  clean: boolean;
  source: string;
  finishedAt: string;
  ageHours: number;
  summary: Record<string, Record<string, number>>;
}

/** The latest `pgferry import` (running or finished), from the run history. */
export interface ImportRun {
  id: number;
  status: string;
  ageHours: number;
}

export interface CutoverStatus {
  storageMode: StorageMode;
  repositories: Array<{ name: string; mode: StorageMode; phase: string; shadow: ShadowCounts | null; journalDepth: number }>;
  journal: { depth: number; oldestAt: string | null };
  /** Rows of `sync_state` (pgferry sync --follow), null when there is none. */
  sync: Array<Record<string, unknown>> | null;
  lastVerify: VerifyRun | null;
  lastImport: ImportRun | null;
  /** Why PostgreSQL could not be read, when it could not. */
  databaseError: string | null;
  advice: string[];
}

export async function cutoverStatus(config: Config, db: Database | undefined, now = new Date()): Promise<CutoverStatus> {
  const modes = storeModes(config);
  const shadow = await readShadowFile(config.dataDir);
  const pending = await new Journal(config.dataDir).pending();
  let sync: CutoverStatus['sync'] = null;
  let lastVerify: VerifyRun | null = null;
  let lastImport: ImportRun | null = null;
  let databaseError: string | null = null;
  if (db) {
    try {
      sync = await readSyncState(db);
      lastVerify = await readLastVerify(db, now);
      lastImport = await readLastImport(db, now);
    } catch (error) {
      databaseError = redactSecrets(String((error as Error)?.message ?? error));
    }
  } else databaseError = 'DATABASE_URL is not set';
  const status: CutoverStatus = {
    storageMode: config.storageMode,
    repositories: STORE_REPOSITORIES.map((name) => ({
      name,
      mode: modes[name],
      phase: PHASES[modes[name]],
      shadow: shadow?.repositories[name] ?? null,
      // Journal entries name the transfer kind of the record file, which is the repository's name.
      journalDepth: pending.entries.filter((entry) => entry.kind === name).length,
    })),
    journal: { depth: pending.entries.length, oldestAt: pending.entries[0]?.at ?? null },
    sync,
    lastVerify,
    lastImport,
    databaseError,
    advice: [],
  };
  status.advice = advise(status, config.dataDir);
  return status;
}

async function readSyncState(db: Database): Promise<Array<Record<string, unknown>> | null> {
  return db.run(
    'cutover.sync_state',
    async (sql) => {
      if (!(await tableExists(sql, 'sync_state'))) return null;
      const rows = await sql<{ row: Record<string, unknown> }[]>`select to_jsonb(s) as row from sync_state s limit 50`;
      return rows.map((r) => r.row);
    },
    { idempotent: true },
  );
}

const hoursSince = (at: Date, now: Date) => Math.round(((now.getTime() - at.getTime()) / 3_600_000) * 10) / 10;

async function readLastImport(db: Database, now: Date): Promise<ImportRun | null> {
  return db.run(
    'cutover.last_import',
    async (sql) => {
      if (!(await tableExists(sql, 'runs'))) return null;
      const [row] = await sql<{ id: string; status: string; started_at: Date }[]>`
        select id, status, started_at from runs where command = 'import' and not dry_run order by started_at desc limit 1`;
      return row ? { id: Number(row.id), status: row.status, ageHours: hoursSince(new Date(row.started_at), now) } : null;
    },
    { idempotent: true },
  );
}

/** The last finished `pgferry verify`, from the run history (migration 0008; none before it). */
async function readLastVerify(db: Database, now: Date): Promise<VerifyRun | null> {
  return db.run(
    'cutover.last_verify',
    async (sql) => {
      if (!(await tableExists(sql, 'runs'))) return null;
      const [row] = await sql<{ exit_code: number | null; source: string | null; finished_at: Date; counts: VerifyRun['summary'] }[]>`
        select exit_code, source, finished_at, counts from runs
         where command = 'verify' and not dry_run and finished_at is not null
         order by finished_at desc limit 1`;
      if (!row) return null;
      const finished = new Date(row.finished_at);
      return {
        clean: row.exit_code === 0,
        source: row.source ?? '',
        finishedAt: finished.toISOString(),
        ageHours: hoursSince(finished, now),
        summary: row.counts,
      };
    },
    { idempotent: true },
  );
}

const age = (hours: number) => (hours >= 48 ? `${Math.floor(hours / 24)} days` : `${Math.round(hours)} hours`);

/** The next step, and what must happen first. */
export function advise(status: CutoverStatus, dataDir: string): string[] {
  const advice: string[] = [];
  const modes = new Set(status.repositories.filter((r) => !(WITHOUT_CUTOVER as readonly string[]).includes(r.name)).map((r) => r.mode));
  const verify = status.lastVerify;
  if (status.databaseError && modes.size > 0 && !(modes.size === 1 && modes.has('json'))) {
    advice.push(`PostgreSQL could not be read (${status.databaseError}): check DATABASE_URL and that the server answers.`);
  }
  if (status.journal.depth > 0) {
    advice.push(
      `${status.journal.depth} write(s) wait in the journal since ${status.journal.oldestAt}: PostgreSQL is down or behind. ` +
        'They replay by themselves once it answers; switch no phase until the journal is empty.',
    );
  }
  for (const repo of status.repositories) {
    if (repo.shadow && repo.shadow.mismatches > 0) {
      advice.push(
        `shadow reads of ${repo.name} found ${repo.shadow.mismatches} mismatch(es) in ${repo.shadow.compared} ` +
          `(last: ${repo.shadow.lastMismatch?.method} ${repo.shadow.lastMismatch?.difference}): run pgferry verify --from ${dataDir} and look before switching reads.`,
      );
    }
  }
  const lastImport = status.lastImport;
  if (lastImport?.status === 'running') {
    advice.push(`an import is running (run #${lastImport.id}): wait for it, then run pgferry verify --from ${dataDir}.`);
  } else if (lastImport && lastImport.status !== 'ok') {
    advice.push(
      `the last import (run #${lastImport.id}) did not finish cleanly: read its problems (pgferry runs ${lastImport.id}), fix the files, run it again.`,
    );
  }
  if (modes.has('json')) {
    advice.push(`phase 0 → 1: set STORAGE_MODE=dual (with DATABASE_URL) so every write also reaches PostgreSQL.`);
  } else if (modes.has('dual')) {
    if (!verify) {
      advice.push(`phase 2: backfill with pgferry import --from ${dataDir}, then pgferry verify --from ${dataDir}.`);
    } else if (!verify.clean) {
      advice.push(
        `the last verify (${age(verify.ageHours)} ago) found differences: run pgferry import --from ${dataDir} again, then verify.`,
      );
    } else if (verify.ageHours > VERIFY_FRESH_HOURS) {
      advice.push(`verify is ${age(verify.ageHours)} old: run pgferry verify --from ${dataDir} before switching reads.`);
    } else if (status.journal.depth === 0) {
      advice.push('verify is clean and fresh: switch reads with STORAGE_MODE=postgres-fallback (phase 3).');
    }
  } else if (modes.has('postgres-fallback')) {
    advice.push(
      'phase 3 → 4: once shadow reads stay clean and a fresh verify is clean, set STORAGE_MODE=postgres (rollback: STORAGE_MODE=dual).',
    );
  } else if (!verify?.clean) {
    advice.push(`every repository is on PostgreSQL: run pgferry verify --from ${dataDir} (clean) before archiving the JSON tree.`);
  } else {
    advice.push(`phase 5: archive the JSON tree: pgferry archive --from ${dataDir} --to data-archive.tar.gz --remove.`);
  }
  return advice;
}
