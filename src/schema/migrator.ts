import type postgres from 'postgres';
import type { Sql } from '../db/database.ts';
import { PgFerryError } from '../errors.ts';
import { type Logger, silentLogger } from '../log.ts';
import { loadMigrations, type Migration, type MigrationFile, splitStatements } from './migrations.ts';

/**
 * Applies numbered migrations (DESIGN section 6). Safety rules:
 * - a session advisory lock serialises runners, so replicas that start
 *   together apply each migration exactly once;
 * - each migration runs in its own transaction together with its tracking row
 *   (never one transaction around a batch), so a failure leaves no partial change;
 * - it refuses to run when an applied file changed or the database is ahead.
 */

export const TRACKING_TABLE = 'pgferry_migrations';
/** Arbitrary constant: the advisory lock key all pgferry migrators agree on. */
const LOCK_KEY = 7_220_415_031;

export interface AppliedMigration {
  version: number;
  name: string;
  checksum: string;
  appliedAt: Date;
  durationMs: number;
}

export interface MigrationStatus {
  current: number;
  latest: number;
  applied: AppliedMigration[];
  pending: Migration[];
  /** Why the runner would refuse to migrate; empty when all is well. */
  problems: string[];
}

export interface PlannedStep {
  version: number;
  name: string;
  direction: 'up' | 'down';
  transactional: boolean;
  sql: string;
}

export interface MigratorOptions {
  logger?: Logger;
  migrations?: Migration[];
  /** Tracking table name (tests use a different one to exercise edge cases). */
  trackingTable?: string;
}

type Conn = postgres.ReservedSql<Record<string, never>> | Sql;

export class Migrator {
  readonly migrations: Migration[];
  private readonly logger: Logger;
  private readonly table: string;
  private readonly sql: Sql;

  constructor(sql: Sql, options: MigratorOptions = {}) {
    this.sql = sql;
    this.migrations = options.migrations ?? loadMigrations();
    this.logger = options.logger ?? silentLogger;
    this.table = options.trackingTable ?? TRACKING_TABLE;
  }

  /** Name of the tracking table (verify builds its scratch schema with the same one). */
  get trackingTable(): string {
    return this.table;
  }

  get latest(): number {
    return this.migrations.at(-1)?.version ?? 0;
  }

  async status(): Promise<MigrationStatus> {
    return this.statusOn(this.sql);
  }

  /** Apply pending migrations up to `to` (default: all). Returns the versions applied. */
  async up(options: { to?: number } = {}): Promise<number[]> {
    const target = options.to ?? this.latest;
    if (target > this.latest || target < 0) {
      throw new PgFerryError('MIGRATION_ERROR', `--to ${target} is out of range: this pgferry knows migrations 1..${this.latest}`);
    }
    return this.withLock(async (conn) => {
      const status = await this.statusOn(conn);
      this.refuseIfUnsafe(status);
      if (target < status.current) {
        throw new PgFerryError(
          'MIGRATION_ERROR',
          `the database is at version ${status.current}, above --to ${target}; use "pgferry db down --to ${target}" to go back`,
        );
      }
      const steps = status.pending.filter((m) => m.version <= target);
      if (steps.length === 0) this.logger.info({ version: status.current }, 'schema is up to date');
      for (const migration of steps) await this.apply(conn, migration, 'up');
      return steps.map((m) => m.version);
    });
  }

  /** Revert applied migrations down to `to` (default: one step). Returns the versions reverted. */
  async down(options: { to?: number } = {}): Promise<number[]> {
    return this.withLock(async (conn) => {
      const status = await this.statusOn(conn);
      this.refuseIfUnsafe(status);
      const target = options.to ?? Math.max(0, status.current - 1);
      if (target < 0 || target > status.current) {
        throw new PgFerryError('MIGRATION_ERROR', `--to ${target} is out of range: the database is at version ${status.current}`);
      }
      const steps = this.migrations.filter((m) => m.version > target && m.version <= status.current).reverse();
      for (const migration of steps) await this.apply(conn, migration, 'down');
      return steps.map((m) => m.version);
    });
  }

  /** The SQL `up`/`down` would run, without running it. */
  async plan(options: { direction?: 'up' | 'down'; to?: number } = {}): Promise<PlannedStep[]> {
    const status = await this.status();
    this.refuseIfUnsafe(status);
    const direction = options.direction ?? 'up';
    if (direction === 'up') {
      const target = options.to ?? this.latest;
      return status.pending.filter((m) => m.version <= target).map((m) => this.step(m, 'up'));
    }
    const target = options.to ?? Math.max(0, status.current - 1);
    return this.migrations
      .filter((m) => m.version > target && m.version <= status.current)
      .reverse()
      .map((m) => this.step(m, 'down'));
  }

  private step(migration: Migration, direction: 'up' | 'down'): PlannedStep {
    const file = this.fileFor(migration, direction);
    return { version: migration.version, name: migration.name, direction, transactional: !file.noTransaction, sql: file.sql };
  }

  private fileFor(migration: Migration, direction: 'up' | 'down'): MigrationFile {
    const file = direction === 'up' ? migration.up : migration.down;
    if (!file) {
      throw new PgFerryError(
        'MIGRATION_ERROR',
        `migration ${migration.version} (${migration.name}) has no down file and cannot be reverted`,
      );
    }
    return file;
  }

  private async ensureTrackingTable(conn: Conn): Promise<void> {
    await conn.unsafe(`create table if not exists ${this.table} (
      version      integer primary key,
      name         text not null,
      checksum     text not null,
      applied_at   timestamptz not null default now(),
      duration_ms  integer not null default 0
    )`);
  }

  private async statusOn(conn: Conn): Promise<MigrationStatus> {
    const exists = await conn`select to_regclass(${this.table}) is not null as present`;
    const rows = exists[0]?.present
      ? await conn.unsafe(`select version, name, checksum, applied_at, duration_ms from ${this.table} order by version`)
      : [];
    const applied: AppliedMigration[] = rows.map((row) => ({
      version: Number(row.version),
      name: String(row.name),
      checksum: String(row.checksum),
      appliedAt: row.applied_at as Date,
      durationMs: Number(row.duration_ms),
    }));
    const problems: string[] = [];
    const appliedVersions = new Set(applied.map((a) => a.version));
    for (const row of applied) {
      const known = this.migrations.find((m) => m.version === row.version);
      if (!known) {
        problems.push(
          `the database has migration ${row.version} (${row.name}) applied, but this pgferry only knows migrations up to ${this.latest}: the database is ahead of the code. Upgrade pgferry, or run the newer version's "pgferry db down --to ${this.latest}".`,
        );
      } else if (known.up.checksum !== row.checksum) {
        problems.push(
          `migration ${row.version} (${row.name}) was changed after it was applied (checksum in database ${row.checksum.slice(0, 12)}…, file ${known.up.checksum.slice(0, 12)}…). Restore the original file and put the change in a new migration.`,
        );
      }
    }
    const current = applied.reduce((max, a) => Math.max(max, a.version), 0);
    return {
      current,
      latest: this.latest,
      applied,
      pending: this.migrations.filter((m) => !appliedVersions.has(m.version)),
      problems,
    };
  }

  private refuseIfUnsafe(status: MigrationStatus): void {
    if (status.problems.length > 0) {
      throw new PgFerryError('MIGRATION_ERROR', `refusing to migrate: ${status.problems.join(' ')}`);
    }
  }

  private async withLock<T>(work: (conn: Conn) => Promise<T>): Promise<T> {
    const conn = await this.sql.reserve();
    try {
      const started = performance.now();
      await conn`select pg_advisory_lock(${LOCK_KEY})`;
      const waited = performance.now() - started;
      if (waited > 50) this.logger.info({ waitedMs: Math.round(waited) }, 'waited for another migrator to finish');
      try {
        await this.ensureTrackingTable(conn);
        return await work(conn);
      } finally {
        await conn`select pg_advisory_unlock(${LOCK_KEY})`.catch(() => {});
      }
    } finally {
      conn.release();
    }
  }

  private async apply(conn: Conn, migration: Migration, direction: 'up' | 'down'): Promise<void> {
    const file = this.fileFor(migration, direction);
    const label = `${String(migration.version).padStart(4, '0')}_${migration.name}.${direction}`;
    this.logger.info({ migration: label, transactional: !file.noTransaction }, `applying ${label}`);
    const started = performance.now();
    const track = async (c: Conn) => {
      if (direction === 'up') {
        await c.unsafe(`insert into ${this.table} (version, name, checksum, duration_ms) values ($1, $2, $3, $4)`, [
          migration.version,
          migration.name,
          migration.up.checksum,
          Math.round(performance.now() - started),
        ]);
      } else {
        await c.unsafe(`delete from ${this.table} where version = $1`, [migration.version]);
      }
    };
    try {
      if (file.noTransaction) {
        for (const statement of splitStatements(file.sql)) await conn.unsafe(statement).simple();
        await track(conn);
      } else {
        await conn`begin`;
        try {
          await conn.unsafe(file.sql).simple();
          await track(conn);
          await conn`commit`;
        } catch (error) {
          await conn`rollback`.catch(() => {});
          throw error;
        }
      }
    } catch (error) {
      const message = (error as Error).message;
      this.logger.error({ migration: label, error: message }, `migration ${label} failed; nothing from it was applied`);
      throw new PgFerryError(
        'MIGRATION_ERROR',
        `migration ${label} failed: ${message}${file.noTransaction ? ' (non-transactional: statements before the failure stay applied)' : '; it was rolled back, nothing changed'}`,
        undefined,
        { cause: error },
      );
    }
    this.logger.info({ migration: label, durationMs: Math.round(performance.now() - started) }, `applied ${label}`);
  }
}
