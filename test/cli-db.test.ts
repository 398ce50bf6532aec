import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../src/db/embedded.ts';
import { Migrator, TRACKING_TABLE } from '../src/schema/migrator.ts';
import { describeSchema } from '../src/schema/verify.ts';
import { type CliResult, logLines, runCli } from './helpers/cli.ts';
import { adminUrl, createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { serverMajor, systemPgDumpMajor } from './helpers/pg-server.ts';

/**
 * `pgferry db …` and `pgferry doctor` as a person runs them: a child process,
 * exit code, stdout for people, JSON logs on stderr. Runs on the harness's
 * PostgreSQL; the migration semantics on several servers are in
 * migrations.test.ts.
 */

const SUBCOMMANDS = ['status', 'up', 'down', 'plan', 'verify'];

describe('pgferry db and doctor (CLI)', () => {
  let tmp: string;
  let password: string;
  const databases: TestDatabase[] = [];

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'pgferry-cli-'));
    // DATABASE_URL=embedded runs PostgreSQL as the postgres user when tests run as root: it must reach DATA_DIR.
    await chmod(tmp, 0o755);
    password = decodeURIComponent(new URL(adminUrl()).password);
  });
  afterEach(async () => {
    await Promise.all(databases.splice(0).map((db) => db.drop()));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  const database = async (options: { empty?: boolean } = {}) => {
    const db = await createTestDatabase(options);
    databases.push(db);
    return db;
  };
  /** Nothing a run prints may contain the database password. */
  const noSecrets = (...runs: CliResult[]) => {
    for (const run of runs) expect(run.stdout + run.stderr).not.toContain(password);
  };

  it('--help on db and on every subcommand explains it with examples', async () => {
    const [group, doctor, ...subs] = await Promise.all([
      runCli(['db', '--help']),
      runCli(['doctor', '--help']),
      ...SUBCOMMANDS.map((sub) => runCli(['db', sub, '--help'])),
    ]);
    expect(group?.code).toBe(0);
    for (const sub of SUBCOMMANDS) expect(group?.stdout).toMatch(new RegExp(`^ {2}${sub} `, 'm'));
    expect(group?.stdout).toContain('Exit codes: 0 ok, 1 a check failed');
    expect(doctor?.code).toBe(0);
    expect(doctor?.stdout).toMatch(/Examples:\n {2}\$ pgferry doctor/);
    subs.forEach((run, index) => {
      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`Usage: pgferry db ${SUBCOMMANDS[index]}`);
      expect(run.stdout).toContain('--database-url <url>');
      expect(run.stdout).toMatch(new RegExp(`Examples:\\n(?: {2}\\$ .*\\n)*? {2}\\$ pgferry db ${SUBCOMMANDS[index]} `));
    });
  });

  it('usage and configuration errors exit 2 with a message naming the problem', async () => {
    const [unset, badUrl, badFlag, badTo] = await Promise.all([
      runCli(['db', 'status']),
      runCli(['db', 'up'], { DATABASE_URL: 'mysql://root@localhost/app' }),
      runCli(['db', 'up', '--no-such-flag']),
      runCli(['db', 'up', '--to', 'two'], { DATABASE_URL: 'postgres://127.0.0.1/x' }),
    ]);
    expect(unset.code).toBe(2);
    expect(unset.stderr).toMatch(/^pgferry: DATABASE_URL is not set, and this command needs PostgreSQL\. .*DATABASE_URL=embedded/m);
    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr).toMatch(/DATABASE_URL: expected a postgres:\/\/ or postgresql:\/\/ URL, or "embedded"/);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toMatch(/unknown option '--no-such-flag'/);
    expect(badTo.code).toBe(2);
    expect(badTo.stderr).toMatch(/--to <n>' argument 'two' is invalid/);
  });

  it('status, plan (changes nothing), up, status on an empty database', async () => {
    const target = await database({ empty: true });
    const env = { DATABASE_URL: target.url };
    const latest = new Migrator(target.db.sql).latest;

    // --database-url stands in for DATABASE_URL.
    const before = await runCli(['db', 'status', '--json', '--database-url', target.url]);
    expect(before.code).toBe(0);
    const status = JSON.parse(before.stdout);
    expect(status).toMatchObject({ current: 0, latest, upToDate: false, applied: [], problems: [] });
    expect(status.pending).toHaveLength(latest);

    const plan = await runCli(['db', 'plan'], env);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toContain('-- 0001_init.up.sql (runs in one transaction with its tracking row)');
    expect(plan.stdout).toContain('create table users (');
    expect(await describeSchema(target.db.sql)).toEqual([]);

    const up = await runCli(['db', 'up'], env);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toMatch(/^applied {2}0001 init \(\d+ ms\)$/m);
    expect(up.stdout).toContain(`schema version is now ${latest} of ${latest}`);
    // Every step is logged as JSON on stderr, and nothing but JSON (no error text).
    const logs = logLines(up.stderr);
    expect(up.stderr.trim().split('\n')).toHaveLength(logs.length);
    expect(logs.map((line) => line.msg)).toEqual(expect.arrayContaining(['applying 0001_init.up', 'applied 0001_init.up']));

    const after = await runCli(['db', 'status'], env);
    expect(after.code).toBe(0);
    expect(after.stdout).toMatch(new RegExp(`^version {3}${latest} of ${latest} \\(up to date\\)$`, 'm'));
    expect(after.stdout).toMatch(/^database {2}postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\//m);
    expect(after.stdout).toMatch(/^ {2}applied {2}0001 init /m);

    const again = await runCli(['db', 'up'], env);
    expect(again.code).toBe(0);
    expect(again.stdout).not.toContain('applied ');
    noSecrets(before, plan, up, after, again);
  });

  it('down is refused without --yes (exit 2, nothing changed) and reverts with it', async () => {
    const target = await database();
    const env = { DATABASE_URL: target.url };
    const schema = await describeSchema(target.db.sql);

    const refused = await runCli(['db', 'down', '--to', '0'], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/down files DROP tables together with every row in them\. Nothing was changed\..*--yes/);
    expect(await describeSchema(target.db.sql)).toEqual(schema);

    const plan = await runCli(['db', 'plan', '--down', '--to', '0'], env);
    expect(plan.stdout).toContain('-- 0001_init.down.sql');
    expect(plan.stdout).toContain('drop table if exists messages;');

    const down = await runCli(['db', 'down', '--to', '0', '--yes'], env);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toMatch(/^reverted 0001 init$/m);
    expect(await describeSchema(target.db.sql, { excludeTables: [TRACKING_TABLE] })).toEqual([]);
  });

  it('verify passes on a clean schema and lists a dropped index and an added column (exit 1)', async () => {
    const target = await database();
    const env = { DATABASE_URL: target.url };
    const clean = await runCli(['db', 'verify'], env);
    expect(clean.code, clean.stderr).toBe(0);
    expect(clean.stdout).toMatch(/^✓ the live schema matches what migrations 1\.\.\d+ produce$/m);

    await target.db.sql`drop index messages_created_at_idx`;
    await target.db.sql`alter table users add column nickname text`;
    const drifted = await runCli(['db', 'verify'], env);
    expect(drifted.code).toBe(1);
    expect(drifted.stdout).toMatch(/^ {2}- index messages\.messages_created_at_idx: CREATE INDEX/m);
    expect(drifted.stdout).toMatch(/^ {2}\+ column users\.nickname: text$/m);

    const json = await runCli(['db', 'verify', '--json'], env);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, extra: ['column users.nickname: text'] });
    noSecrets(clean, drifted, json);
  });

  it('refuses a database that is ahead of the code (exit 1) and says what to do', async () => {
    const target = await database();
    await target.db.sql.unsafe(`insert into ${TRACKING_TABLE} (version, name, checksum) values (9999, 'from_the_future', 'x')`);
    const env = { DATABASE_URL: target.url };
    const [up, status] = await Promise.all([runCli(['db', 'up'], env), runCli(['db', 'status'], env)]);
    expect(up.code).toBe(1);
    expect(up.stderr).toMatch(
      /refusing to migrate: the database has migration 9999 \(from_the_future\) applied.*ahead of the code\. Upgrade pgferry/,
    );
    expect(status.code).toBe(1);
    expect(status.stdout).toMatch(/^problems:\n {2}✗ the database has migration 9999/m);
  });

  it('--backup fails clearly when pg_dump is missing or too old, before migrating anything', async () => {
    const target = await database({ empty: true });
    const file = path.join(tmp, 'backup.dump');
    const missing = await runCli(['db', 'up', '--backup', file], { DATABASE_URL: target.url, PG_DUMP: '/nonexistent/pg_dump' });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/--backup needs pg_dump, but "\/nonexistent\/pg_dump" is not installed.*Install the PostgreSQL/);

    const major = await serverMajor(adminUrl());
    const dumpMajor = await systemPgDumpMajor();
    const withSystem = await runCli(['db', 'up', '--backup', file], { DATABASE_URL: target.url });
    if (dumpMajor !== undefined && dumpMajor >= major) {
      expect(withSystem.code, withSystem.stderr).toBe(0);
      expect(existsSync(file)).toBe(true);
    } else {
      expect(withSystem.code).toBe(1);
      expect(withSystem.stderr).toMatch(
        new RegExp(`pg_dump ${dumpMajor ?? ''}.*(older than the server \\(PostgreSQL ${major}|not installed)`),
      );
      expect(existsSync(file)).toBe(false);
      expect(await describeSchema(target.db.sql)).toEqual([]);
    }
    noSecrets(missing, withSystem);
  });

  it('DATABASE_URL=embedded: db up then db status show every migration applied; the server is stopped after', async () => {
    const env = { DATABASE_URL: 'embedded', DATA_DIR: path.join(tmp, 'embedded') };
    const up = await runCli(['db', 'up'], env);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toMatch(/^applied {2}0001 init/m);
    const status = await runCli(['db', 'status'], env);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/\(up to date\)/);
    expect(existsSync(path.join(env.DATA_DIR, 'postgres', 'PG_VERSION'))).toBe(true);
    expect(existsSync(path.join(env.DATA_DIR, 'postgres', 'postmaster.pid'))).toBe(false);
  });

  describe('doctor', () => {
    const dataDir = () => path.join(tmp, 'doctor-data');

    it('exit 0 on a healthy migrated database, ✓ for each check', async () => {
      const target = await database();
      const run = await runCli(['doctor'], { DATABASE_URL: target.url, DATA_DIR: dataDir() });
      expect(run.code, run.stdout + run.stderr).toBe(0);
      for (const check of ['config', 'data dir', 'database', 'schema', 'schema verify'])
        expect(run.stdout).toMatch(new RegExp(`^✓ ${check}: `, 'm'));
      expect(run.stdout).toMatch(/^[✓!] pg_dump: /m);
      expect(run.stdout).toMatch(/all checks passed\n$/);
      noSecrets(run);
    });

    it('exit 1 on schema drift, and on pending migrations with AUTO_MIGRATE=false', async () => {
      const drifted = await database();
      await drifted.db.sql`drop index messages_created_at_idx`;
      const empty = await database({ empty: true });
      const [drift, pending, pendingAuto] = await Promise.all([
        runCli(['doctor'], { DATABASE_URL: drifted.url, DATA_DIR: dataDir() }),
        runCli(['doctor', '--no-verify'], { DATABASE_URL: empty.url, DATA_DIR: dataDir(), AUTO_MIGRATE: 'false' }),
        runCli(['doctor', '--no-verify'], { DATABASE_URL: empty.url, DATA_DIR: dataDir() }),
      ]);
      expect(drift.code).toBe(1);
      expect(drift.stdout).toMatch(/^✗ schema verify: 1 difference\(s\): missing index messages\.messages_created_at_idx/m);
      expect(pending.code).toBe(1);
      expect(pending.stdout).toMatch(
        /^✗ schema: version 0 of \d+; \d+ migration\(s\) pending and AUTO_MIGRATE=false: run "pgferry db up"$/m,
      );
      expect(pending.stdout).toMatch(/^– schema verify: skipped \(--no-verify\)$/m);
      // With AUTO_MIGRATE on (the default) pending migrations are applied on open: a warning, not a failure.
      expect(pendingAuto.code).toBe(0);
      expect(pendingAuto.stdout).toMatch(/^! schema: /m);
    });

    it('exit 1 for an invalid config, an unwritable DATA_DIR or an unreachable database; 0 with no database', async () => {
      const notADir = path.join(tmp, 'a-file');
      await mkdir(tmp, { recursive: true });
      await writeFile(notADir, 'not a directory');
      const port = await freePort();
      const [badConfig, badDir, unreachable, jsonOnly] = await Promise.all([
        runCli(['doctor'], { DB_POOL_MAX: 'lots', DATA_DIR: dataDir() }),
        runCli(['doctor'], { DATA_DIR: notADir }),
        runCli(['doctor'], {
          DATABASE_URL: `postgres://app:sekret-pw@127.0.0.1:${port}/app`,
          DB_CONNECT_TIMEOUT_S: '1',
          DATA_DIR: dataDir(),
        }),
        runCli(['doctor'], { DATA_DIR: dataDir() }),
      ]);
      expect(badConfig.code).toBe(1);
      expect(badConfig.stdout).toMatch(/^✗ config: DB_POOL_MAX: expected an integer from 1 to 1000, got "lots"$/m);
      expect(badConfig.stdout).toMatch(/^– database: skipped: the configuration is invalid$/m);
      expect(badDir.code).toBe(1);
      expect(badDir.stdout).toMatch(/^✗ data dir: DATA_DIR .*a-file is not writable/m);
      expect(unreachable.code).toBe(1);
      expect(unreachable.stdout).toMatch(/^✗ database: cannot connect to postgres:\/\/app:\*\*\*@127\.0\.0\.1/m);
      expect(unreachable.stdout + unreachable.stderr).not.toContain('sekret-pw');
      expect(jsonOnly.code).toBe(0);
      expect(jsonOnly.stdout).toMatch(/^– database: not configured \(DATABASE_URL unset\)/m);
    });
  });
});
