import { chmod, mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { textDepthExceeds } from '../src/formats/json-depth.ts';
import { parseSize } from '../src/transfer/limits.ts';
import { runCliWithDeadline, type TimedRun } from './helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

const cli = (args: string[], timeoutMs = 30_000): Promise<TimedRun> =>
  runCliWithDeadline(args, { env: { LOG_LEVEL: process.env.CHILD_LOG ?? 'warn' }, timeoutMs });

const conversation = (id: string, messages: string) =>
  `{"id":"${id}","user_id":"u1","created_at":"2024-01-01T00:00:00","title":"t","messages":${messages}}`;
const deepMessage = (depth: number) =>
  `[{"role":"assistant","stage1":${'['.repeat(depth)}${']'.repeat(depth)},"stage2":[],"stage3":{"model":"m","response":"r"}}]`;

describe('import limits', () => {
  let tmp: string;
  const databases: TestDatabase[] = [];
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'pgferry-limits-'));
    await chmod(tmp, 0o755);
  });
  afterEach(async () => {
    await Promise.all(databases.splice(0).map((db) => db.drop()));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });
  const database = async () => {
    const db = await createTestDatabase({ prefix: 'limits' });
    databases.push(db);
    return db;
  };
  const tree = async (name: string, files: Record<string, string>) => {
    const dir = path.join(tmp, name);
    for (const [rel, text] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
      await writeFile(path.join(dir, rel), text);
    }
    return dir;
  };

  /** Sessions of the test database other than the test's own: a finished run must leave none (no open transaction, no lock). */
  const leftovers = async (t: TestDatabase) =>
    t.db.sql<{ state: string; query: string }[]>`
      select state, left(query, 80) as query from pg_stat_activity
       where datname = ${t.name} and pid <> pg_backend_pid() and application_name like 'pgferry%'`;
  const lockIsFree = async (t: TestDatabase) => {
    const [row] = await t.db.sql<{ free: boolean }[]>`select pg_try_advisory_lock(7220415032) as free`;
    if (row?.free) await t.db.sql`select pg_advisory_unlock(7220415032)`;
    return row?.free;
  };
  const ids = async (t: TestDatabase) => (await t.db.sql<{ id: string }[]>`select id from conversations order by id`).map((r) => r.id);
  const reportOf = async (file: string) =>
    (await readFile(file, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { file: string; record: string | null; reason: string; severity: string });

  describe('files too deep or too large, beside valid ones (default limits)', () => {
    let src: string;
    let t: TestDatabase;
    const OK = conversation('ok', '[{"role":"user","content":"fine"}]');

    beforeAll(async () => {
      src = await tree('hostile', {
        'conversations/u1/deep20k.json': conversation('deep20k', deepMessage(20_000)),
        'conversations/u1/deep40k.json': conversation('deep40k', deepMessage(40_000)),
        'conversations/u1/ok.json': OK,
        'conversations/u1/ok2.json': conversation('ok2', '[]'),
      });
      // 700 MB, sparse: a valid start, then holes. The scan's size alone rejects it; it costs no disk and is never read.
      const huge = await open(path.join(src, 'conversations/u1/huge.json'), 'w');
      await huge.write(conversation('huge', '[]'));
      await huge.truncate(700 * 1024 * 1024);
      await huge.close();
      t = await createTestDatabase({ prefix: 'limits' });
    });
    afterAll(async () => {
      await t?.drop();
    });

    const REJECTED = ['conversations/u1/deep20k.json', 'conversations/u1/deep40k.json', 'conversations/u1/huge.json'];

    const expectReasons = async (report: string) => {
      const errors = (await reportOf(report)).filter((line) => line.severity === 'error');
      expect(errors.map((line) => line.file).sort()).toEqual(REJECTED);
      const reason = (file: string) => errors.find((line) => line.file === `conversations/u1/${file}`)?.reason;
      expect(reason('deep20k.json')).toMatch(/nested more than 64 levels deep \(--max-depth 64\)/);
      expect(reason('deep40k.json')).toMatch(/nested more than 64 levels deep/);
      expect(reason('huge.json')).toMatch(/file is 700 MiB, over --max-file-size 64 MiB: not read/);
    };

    it('import reports them, imports the neighbours, exits 1 in bounded time and leaves no session or lock behind', async () => {
      const report = path.join(tmp, 'limits-import.jsonl');
      const run = await cli(['import', '--from', src, '--to', t.url, '--report', report]);
      expect(run.timedOut).toBe(false);
      expect(run.stderr).not.toMatch(/Maximum call stack|Cannot create a string|unexpected error|^\s+at /m);
      expect(run.code, run.stdout + run.stderr).toBe(1);
      expect(run.ms).toBeLessThan(15_000);
      // The 700 MB file costs no memory: it is never read.
      expect(Number(/peak RSS (\d+) MB/.exec(run.stdout)?.[1])).toBeLessThan(400);
      expect(await ids(t)).toEqual(['ok', 'ok2']);
      await expectReasons(report);
      expect(await leftovers(t)).toEqual([]);
      expect(await lockIsFree(t)).toBe(true);

      // The next import runs (no "another pgferry import is running"), and finds the neighbours unchanged.
      const again = await cli(['import', '--from', src, '--to', t.url]);
      expect(again.code, again.stdout + again.stderr).toBe(1);
      expect(again.stdout).toMatch(/^conversations\s+5\s+0\s+0\s+2\s+3\s/m);
    });

    it('import --dry-run reports the same files the same way', async () => {
      const report = path.join(tmp, 'limits-dry.jsonl');
      const run = await cli(['import', '--dry-run', '--from', src, '--to', t.url, '--report', report]);
      expect(run.timedOut).toBe(false);
      expect(run.code, run.stdout + run.stderr).toBe(1);
      await expectReasons(report);
    });

    it('verify counts them unreadable and the neighbours identical, exit 1', async () => {
      const report = path.join(tmp, 'limits-verify.jsonl');
      const run = await cli(['verify', '--from', src, '--to', t.url, '--report', report]);
      expect(run.timedOut).toBe(false);
      expect(run.stderr).not.toMatch(/Maximum call stack|unexpected error/);
      expect(run.code, run.stdout + run.stderr).toBe(1);
      expect(run.stdout).toMatch(/^conversations\s+5\s+2\s+0\s+0\s+0\s+3\s*$/m);
      await expectReasons(report);
    });

    it('--max-file-size and --max-depth move the limits; a bad size is a usage error (exit 2)', async () => {
      const report = path.join(tmp, 'limits-small.jsonl');
      const run = await cli([
        'import',
        '--dry-run',
        '--from',
        src,
        '--to',
        t.url,
        '--report',
        report,
        '--max-file-size',
        '100',
        '--max-depth',
        '1',
      ]);
      expect(run.code, run.stdout + run.stderr).toBe(1);
      const errors = (await reportOf(report)).filter((line) => line.severity === 'error');
      expect(errors.find((line) => line.file === 'conversations/u1/ok2.json')?.reason).toMatch(/--max-depth 1\)/);
      expect(errors.find((line) => line.file === 'conversations/u1/huge.json')?.reason).toMatch(/over --max-file-size 100 bytes/);
      const bad = await cli(['import', '--from', src, '--to', t.url, '--max-file-size', '2GiB']);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/--max-file-size/);
    });
  });

  describe('past the depth check (--max-depth 100000): the other lines of defence', () => {
    it('PostgreSQL refusing a batch (stack depth limit exceeded) rolls it back and loads record by record; no hang, no open transaction', async () => {
      const t = await database();
      // The store's own depth limit (formats/chat-conversation.ts) now stops a 20,000-deep file before
      // PostgreSQL sees it, so the server's refusal of that COPY is reproduced here by a trigger in this
      // test's database that raises the same error for one conversation's rows, mid-COPY.
      await t.db.sql.unsafe(`
        create function refuse_deep() returns trigger language plpgsql as $$
        begin
          if new.conversation_id = 'deep' then raise exception 'stack depth limit exceeded' using errcode = '54001'; end if;
          return new;
        end $$;
        create trigger refuse_deep before insert on messages for each row execute function refuse_deep();`);
      const src = await tree('deep-db', {
        'conversations/u1/deep.json': conversation('deep', deepMessage(10)),
        'conversations/u1/ok.json': conversation('ok', '[{"role":"user","content":"fine"}]'),
      });
      const report = path.join(tmp, 'deep-db.jsonl');
      const run = await cli(['import', '--from', src, '--to', t.url, '--report', report, '--max-depth', '100000']);
      expect(run.timedOut, 'the import hung').toBe(false);
      expect(run.code, run.stdout + run.stderr).toBe(1);
      expect(await ids(t)).toEqual(['ok']);
      const errors = (await reportOf(report)).filter((line) => line.severity === 'error');
      expect(errors).toEqual([
        expect.objectContaining({
          file: 'conversations/u1/deep.json',
          record: 'deep',
          reason: expect.stringMatching(/database refused the record: stack depth/),
        }),
      ]);
      expect(await leftovers(t)).toEqual([]);
      expect(await lockIsFree(t)).toBe(true);
      const again = await cli(['import', '--from', src, '--to', t.url, '--max-depth', '100000']);
      expect(again.code, again.stdout + again.stderr).toBe(1);
    });

    it("a stack overflow while reading (40,000 deep) is that record's rejection in import and verify, never the run's", async () => {
      const t = await database();
      const src = await tree('deep-stack', {
        'conversations/u1/deep.json': conversation('deep', deepMessage(40_000)),
        'conversations/u1/ok.json': conversation('ok', '[{"role":"user","content":"fine"}]'),
      });
      const run = await cli(['import', '--from', src, '--to', t.url, '--max-depth', '100000']);
      expect(run.timedOut).toBe(false);
      expect(run.code, run.stdout + run.stderr).toBe(1);
      expect(run.stdout).toMatch(/deep\.json \[deep\]: .*(Maximum call stack|stack depth|nests deeper than 64 levels)/);
      expect(await ids(t)).toEqual(['ok']);
      const verify = await cli(['verify', '--from', src, '--to', t.url, '--max-depth', '100000']);
      expect(verify.code, verify.stdout + verify.stderr).toBe(1);
      expect(verify.stdout).toMatch(/^conversations\s+2\s+1\s+0\s+0\s+0\s+1\s*$/m);
    });
  });
});

describe('textDepthExceeds', () => {
  it('counts arrays and objects, not brackets inside strings or after escaped quotes', () => {
    expect(textDepthExceeds('[]', 1)).toBe(false);
    expect(textDepthExceeds('[[]]', 1)).toBe(true);
    expect(textDepthExceeds('{"a":{"b":[1]}}', 3)).toBe(false);
    expect(textDepthExceeds('{"a":{"b":[1]}}', 2)).toBe(true);
    expect(textDepthExceeds('"[[[["', 0)).toBe(false);
    expect(textDepthExceeds('["\\"[[["]', 1)).toBe(false);
    expect(textDepthExceeds('["\\\\"[[]]', 2)).toBe(true);
    expect(textDepthExceeds('"never closed [[[', 0)).toBe(false);
  });
  it('is linear and recursion-free: a million levels cost nothing', () => {
    const started = performance.now();
    expect(textDepthExceeds('['.repeat(1_000_000), 64)).toBe(true);
    expect(textDepthExceeds(`${'"x",'.repeat(1_000_000)}1`, 64)).toBe(false);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe('parseSize', () => {
  it('reads bytes and binary units', () => {
    expect(parseSize('1048576')).toBe(1024 * 1024);
    expect(parseSize('64MiB')).toBe(64 * 1024 * 1024);
    expect(parseSize('200MB')).toBe(200 * 1024 * 1024);
    expect(parseSize('512k')).toBe(512 * 1024);
    expect(parseSize('1G')).toBe(1024 ** 3);
    expect(parseSize('lots')).toBeNaN();
  });
});
