import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { Database, withDatabase } from '../../src/db/database.ts';
import { libpqEnv } from '../../src/schema/backup.ts';

/**
 * Fresh databases on any PostgreSQL server given its superuser URL — the
 * harness's embedded PostgreSQL 18 or the PostgreSQL 15 of test/helpers/pg15.ts —
 * for suites that run once per server.
 */

const run = promisify(execFile);

export interface ServerDatabase {
  url: string;
  name: string;
  db: Database;
  drop(): Promise<void>;
}

async function admin<T>(adminUrl: string, work: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    return await work(sql);
  } finally {
    await sql.end();
  }
}

/** An empty database on the server behind `adminUrl`. */
export async function createDatabaseOn(adminUrl: string, prefix = 'm'): Promise<ServerDatabase> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  await admin(adminUrl, (sql) => sql.unsafe(`create database ${name}`));
  const url = withDatabase(adminUrl, name);
  const db = new Database({ url, pool: { max: 4, idleSeconds: 5, connectTimeoutSeconds: 10 }, statementTimeoutMs: 0 });
  return {
    url,
    name,
    db,
    drop: async () => {
      await db.close();
      await admin(adminUrl, (sql) => sql.unsafe(`drop database if exists ${name} with (force)`));
    },
  };
}

export async function serverMajor(url: string): Promise<number> {
  return admin(url, async (sql) => {
    const [row] = await sql`select current_setting('server_version_num')::int / 10000 as major`;
    return Number(row?.major);
  });
}

/** The system pg_dump's major version, or undefined when there is none. */
export async function systemPgDumpMajor(): Promise<number | undefined> {
  try {
    const { stdout } = await run('pg_dump', ['--version']);
    return Number(/\)\s*(\d+)/.exec(stdout)?.[1]);
  } catch {
    return undefined;
  }
}

/**
 * `pg_dump --schema-only` text. Since 15.14/17.6 pg_dump writes
 * `\restrict <random key>` lines that differ on every run; they are dropped.
 */
export async function schemaDump(url: string): Promise<string> {
  const { stdout } = await run('pg_dump', ['--schema-only', '--no-password'], {
    env: { ...process.env, ...libpqEnv(url) },
    maxBuffer: 32 * 1024 * 1024,
  });
  return stdout
    .split('\n')
    .filter((line) => !/^\\(un)?restrict /.test(line))
    .join('\n');
}
