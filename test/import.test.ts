import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { fromJsonb } from '../src/domain/json-values.ts';
import { MANIFEST_NAME } from '../src/transfer/backup.ts';
import { writeSample } from '../src/transfer/sample.ts';
import { dumpTables, readJsonLines, runCli, snapshotTree, write, writeQuirksCorpus } from './fixtures/import-corpus.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * `pgferry import` end to end: the CLI as a user runs it, a real PostgreSQL,
 * and the rows read back. Bad input is exercised case by case (issue 4).
 */

let tmp: string;
let db: TestDatabase;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-import-'));
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.drop();
  await fs.rm(tmp, { recursive: true, force: true });
});

async function freshDir(name: string): Promise<string> {
  const dir = path.join(tmp, name);
  await fs.rm(dir, { recursive: true, force: true });
  await fs.mkdir(dir, { recursive: true });
  return dir;
}

async function resetTables(): Promise<void> {
  await db.db.sql`truncate conversations, messages, usage, import_log`;
}

const importArgs = (dir: string, ...more: string[]) => ['import', '--from', dir, '--to', db.url, ...more];

describe('round trip', () => {
  let dir: string;
  beforeAll(async () => {
    await resetTables();
    dir = await freshDir('quirks');
    await writeQuirksCorpus(dir);
  });

  it('imports every quirk of the seed files and reads back what the files say', async () => {
    const before = await snapshotTree(dir);
    const result = await runCli(importArgs(dir, '--default-user', 'owner_1'));
    expect(result.stderr).not.toMatch(/unexpected error/);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/conversations\s+4\s+4\s+0\s+0\s+0/);
    expect(result.stdout).toMatch(/usage\s+2\s+2\s+0\s+0\s+0/);
    // The source is never modified.
    expect(await snapshotTree(dir)).toEqual(before);

    const sql = db.db.sql;
    const conversations = await sql<
      { id: string; user_id: string; title: string; created: string; updated: string; message_count: number }[]
    >`select id, user_id, title, to_char(created_at, 'YYYY-MM-DD"T"HH24:MI:SS.US') as created,
             to_char(updated_at, 'YYYY-MM-DD"T"HH24:MI:SS.US') as updated, message_count
        from conversations order by id`;
    expect(conversations).toEqual([
      {
        id: 'conv-a1',
        user_id: 'user_a',
        title: 'Quirks',
        created: '2024-05-01T10:20:30.123456',
        updated: '2024-05-01T10:25:00.000001', // its last message: the file has no updated_at
        message_count: 4,
      },
      {
        id: 'conv-a2',
        user_id: 'user_a',
        title: 'Café ☕ — 数据',
        created: '2024-06-02T08:00:00.000000',
        updated: '2024-06-03T07:30:00.500000',
        message_count: 2,
      },
      {
        id: 'conv-b1',
        user_id: 'user_b',
        title: 'B',
        created: '2024-01-01T00:00:00.000000',
        updated: '2024-01-01T00:00:00.000000',
        message_count: 1,
      },
      {
        id: 'legacy-1',
        user_id: 'owner_1',
        title: 'Old layout',
        created: '2023-12-31T23:59:59.999999',
        updated: '2023-12-31T23:59:59.999999',
        message_count: 1,
      },
    ]);

    const messages = await sql<
      { position: number; role: string; content: string | null; stage1: unknown; stage3: unknown; metadata: unknown; created: string }[]
    >`select position, role, content, stage1_data as stage1, stage3_data as stage3, metadata, to_char(created_at, 'YYYY-MM-DD"T"HH24:MI:SS.US') as created
        from messages where conversation_id = 'conv-a1' order by position`;
    expect(messages.map((m) => m.position)).toEqual([0, 1, 2, 3]);
    expect(messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
    expect(messages[0]!.content).toBe('Line one\nline two "quoted" \\ backslash\ttab');
    expect(messages[2]!.content).toBe('NaN and Infinity inside a string stay text: [NaN, Infinity]');
    // A message's own timestamp, else the conversation's.
    expect(messages.map((m) => m.created)).toEqual([
      '2024-05-01T10:20:30.123456',
      '2024-05-01T10:20:30.123456',
      '2024-05-01T10:25:00.000001',
      '2024-05-01T10:20:30.123456',
    ]);
    expect(messages[1]!.stage1).toEqual([
      { model: 'm1', response: 'r1' },
      { model: 'm2', response: 'r2' },
    ]);
    // NaN and ±Infinity survive: tagged in JSONB, numbers again when decoded.
    const rankings = (fromJsonb(messages[1]!.metadata) as { aggregate_rankings: Array<{ average_rank: number }> }).aggregate_rankings;
    expect(rankings.map((r) => r.average_rank)).toEqual([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1.5]);
    // Omitted metadata stays absent (SQL NULL), an empty one stays empty.
    expect(messages[3]!.metadata).toBeNull();
    const [a2] = await sql<
      { metadata: unknown; stage1: unknown }[]
    >`select metadata, stage1_data as stage1 from messages where conversation_id = 'conv-a2' and position = 1`;
    expect(a2!.metadata).toEqual({});
    expect(a2!.stage1).toEqual([{ model: 'm1', response: 'ça va' }]);

    const usage = await sql`
      select user_id, tier, daily_used, daily_limit, monthly_used, monthly_limit, total_queries::int as total,
             last_reset_daily::text as d, last_reset_monthly::text as m
        from usage order by user_id`;
    expect(usage).toEqual([
      {
        user_id: 'user_a',
        tier: 'pro',
        daily_used: 3,
        daily_limit: 100,
        monthly_used: 42,
        monthly_limit: 3000,
        total: 1234,
        d: '2024-06-03',
        m: '2024-06-01',
      },
      {
        user_id: 'user_b',
        tier: 'free',
        daily_used: 5,
        daily_limit: 10,
        monthly_used: 50,
        monthly_limit: 100,
        total: 150,
        d: '2024-01-01',
        m: '2024-01-01',
      },
    ]);

    const log = await sql<{ kind: string; record_key: string; source: string; status: string; content_hash: string }[]>`
      select kind, record_key, source, status, content_hash from import_log order by kind, record_key`;
    expect(log.map((r) => `${r.kind}:${r.record_key}:${r.source}:${r.status}`)).toEqual([
      'conversation:conv-a1:conversations/user_a/conv-a1.json:inserted',
      'conversation:conv-a2:conversations/user_a/conv-a2.json:inserted',
      'conversation:conv-b1:conversations/user_b/conv-b1.json:inserted',
      'conversation:legacy-1:conversations/legacy-1.json:inserted',
      'usage:user_a:usage/user_a/usage.json:inserted',
      'usage:user_b:usage/user_b/usage.json:inserted',
    ]);
    for (const row of log) expect(row.content_hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('a second run changes nothing and says so', async () => {
    const before = await dumpTables(db.db.sql);
    const result = await runCli(importArgs(dir, '--default-user', 'owner_1'));
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/conversations\s+4\s+0\s+0\s+4\s+0/);
    expect(result.stdout).toMatch(/Nothing to change: all 6 records are already in the database/);
    // Not even import_log or a default timestamp moved: nothing was written.
    expect(await dumpTables(db.db.sql)).toEqual(before);
  });

  it('applies an edited source on the next run, replacing that conversation only', async () => {
    const file = path.join(dir, 'conversations/user_b/conv-b1.json');
    const doc = JSON.parse(await fs.readFile(file, 'utf8'));
    doc.title = 'B, renamed';
    doc.messages.push({ role: 'assistant', stage1: [], stage2: [], stage3: { model: 'c', response: 'new answer' } });
    doc.messages.push({ role: 'user', content: 'and another' });
    await fs.writeFile(file, JSON.stringify(doc));
    const untouched = await db.db.sql`select id, position from messages where conversation_id = 'conv-a1' order by position`;

    const result = await runCli(importArgs(dir, '--default-user', 'owner_1'));
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/conversations\s+4\s+0\s+1\s+3\s+0/);
    const [head] = await db.db.sql`select title, message_count from conversations where id = 'conv-b1'`;
    expect(head).toEqual({ title: 'B, renamed', message_count: 3 });
    const rows = await db.db.sql`select position, role, content from messages where conversation_id = 'conv-b1' order by position`;
    expect(rows).toEqual([
      { position: 0, role: 'user', content: 'hi' },
      { position: 1, role: 'assistant', content: null },
      { position: 2, role: 'user', content: 'and another' },
    ]);
    const [log] = await db.db.sql`select status from import_log where kind = 'conversation' and record_key = 'conv-b1'`;
    expect(log!.status).toBe('updated');
    // Other conversations kept their rows (same ids: not rewritten).
    expect(await db.db.sql`select id, position from messages where conversation_id = 'conv-a1' order by position`).toEqual(untouched);
  });

  it('reports records whose source is gone, and removes them only with --prune', async () => {
    await fs.rm(path.join(dir, 'conversations/user_b/conv-b1.json'));
    await fs.rm(path.join(dir, 'usage/user_b'), { recursive: true });
    const report = path.join(tmp, 'gone.jsonl');

    const reported = await runCli(importArgs(dir, '--default-user', 'owner_1', '--report', report));
    expect(reported.code, reported.stdout + reported.stderr).toBe(0);
    expect(reported.stdout).toMatch(/conversations\s+3\s+0\s+0\s+3\s+0\s+0\s+1/);
    expect(reported.stdout).toMatch(/run with --prune to delete them/);
    expect(await db.db.sql`select id from conversations where id = 'conv-b1'`).toHaveLength(1);
    const lines = readJsonLines(await fs.readFile(report, 'utf8'));
    expect(lines).toContainEqual(
      expect.objectContaining({ kind: 'conversation', record: 'conv-b1', file: 'conversations/user_b/conv-b1.json', severity: 'warning' }),
    );
    expect(lines).toContainEqual(expect.objectContaining({ kind: 'usage', record: 'user_b', severity: 'warning' }));

    const pruned = await runCli(importArgs(dir, '--default-user', 'owner_1', '--prune'));
    expect(pruned.code, pruned.stdout + pruned.stderr).toBe(0);
    expect(pruned.stdout).toMatch(/conversations\s+3\s+0\s+0\s+3\s+0\s+0\s+1/);
    expect(await db.db.sql`select id from conversations where id = 'conv-b1'`).toHaveLength(0);
    expect(await db.db.sql`select 1 from messages where conversation_id = 'conv-b1'`).toHaveLength(0);
    expect(await db.db.sql`select 1 from usage where user_id = 'user_b'`).toHaveLength(0);
    const log = await db.db.sql`select record_key, status, content_hash from import_log where status = 'pruned' order by record_key`;
    expect(log).toEqual([
      { record_key: 'conv-b1', status: 'pruned', content_hash: null },
      { record_key: 'user_b', status: 'pruned', content_hash: null },
    ]);

    // Once pruned, nothing more to report.
    const again = await runCli(importArgs(dir, '--default-user', 'owner_1'));
    expect(again.stdout).not.toMatch(/--prune to delete/);
  });
});

describe('bad input', () => {
  it('an unreadable --from directory is a usage error (exit 2) with a clear message', async () => {
    const missing = await runCli(['import', '--from', path.join(tmp, 'does-not-exist'), '--to', db.url]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read --from directory .*does-not-exist.* \(ENOENT\)/);

    const file = await write(tmp, 'a-file.txt', 'x');
    const notDir = await runCli(['import', '--from', file, '--to', db.url]);
    expect(notDir.code).toBe(2);
    expect(notDir.stderr).toMatch(/cannot read --from directory/);

    // The seed script's bug: pointed one level too deep, it silently imported nothing. Here it says so.
    const parent = await freshDir('too-deep');
    await write(parent, 'conversations/u1/c1.json', '{}');
    const deep = await runCli(['import', '--from', path.join(parent, 'conversations'), '--to', db.url]);
    expect(deep.code).toBe(2);
    expect(deep.stderr).toMatch(/has no conversations\/ or usage\/ or submissions\/ or jobs\/ folder.*did you mean its parent/);

    if (process.getuid?.() !== 0) {
      const locked = await freshDir('locked');
      await fs.mkdir(path.join(locked, 'conversations'));
      await fs.chmod(locked, 0o000);
      const denied = await runCli(['import', '--from', locked, '--to', db.url]);
      await fs.chmod(locked, 0o755);
      expect(denied.code).toBe(2);
      expect(denied.stderr).toMatch(/cannot read --from directory/);
    }

    const usage = await runCli(['import', '--from', tmp, '--to', db.url, '--only', 'nonsense']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/--only.*conversations, usage/);
  });

  describe('records', () => {
    let dir: string;
    let result: Awaited<ReturnType<typeof runCli>>;
    let report: Array<Record<string, unknown>>;
    const outside = () => path.join(tmp, 'outside-secret.json');

    beforeAll(async () => {
      await resetTables();
      dir = await freshDir('bad');
      const ok = (id: string, user: string) =>
        JSON.stringify({
          id,
          user_id: user,
          created_at: '2024-01-01T00:00:00',
          title: id,
          messages: [{ role: 'user', content: `hello from ${id}` }],
        });
      await write(dir, 'conversations/u1/good-1.json', ok('good-1', 'u1'));
      await write(dir, 'conversations/u1/good-2.json', `\ufeff${ok('good-2', 'u1').replace(/,/g, ',\r\n')}`); // BOM + CRLF
      await write(dir, 'conversations/u1/broken.json', '{"id": "broken", "messages": [');
      await write(dir, 'conversations/u1/no-id.json', JSON.stringify({ user_id: 'u1', created_at: '2024-01-02T00:00:00', messages: [] }));
      await write(dir, 'conversations/u1/shared-id.json', ok('shared-id', 'u1'));
      await write(dir, 'conversations/u2/shared-id.json', ok('shared-id', 'u2'));
      await write(
        dir,
        'conversations/u1/not-a-list.json',
        JSON.stringify({ id: 'not-a-list', created_at: '2024-01-01', messages: { 0: 'x' } }),
      );
      await write(
        dir,
        'conversations/u1/bad-role.json',
        JSON.stringify({ id: 'bad-role', created_at: '2024-01-01', messages: [{ role: 'system', content: 'x' }] }),
      );
      await write(
        dir,
        'conversations/u1/bad-content.json',
        JSON.stringify({ id: 'bad-content', created_at: '2024-01-01', messages: [{ role: 'user', content: 42 }] }),
      );
      await write(dir, 'conversations/u1/bad-date.json', JSON.stringify({ id: 'bad-date', created_at: 'yesterday', messages: [] }));
      await write(
        dir,
        'conversations/u1/nul.json',
        JSON.stringify({ id: 'nul', created_at: '2024-01-01', messages: [{ role: 'user', content: 'a\u0000b' }] }),
      );
      await write(dir, 'conversations/u1/id-mismatch.json', ok('other-id', 'u1'));
      await write(dir, 'conversations/u1/bad id!.json', JSON.stringify({ created_at: '2024-01-01', messages: [] }));
      await write(dir, 'conversations/u1/notes.txt', 'not a record');
      await write(tmp, 'outside-secret.json', ok('outside-secret', 'u1'));
      await fs.symlink(outside(), path.join(dir, 'conversations/u1/outside-secret.json'));
      await write(dir, 'extra/inside-link.json', ok('inside-link', 'u4'));
      await fs.mkdir(path.join(dir, 'conversations/u4'));
      await fs.symlink('../../extra/inside-link.json', path.join(dir, 'conversations/u4/inside-link.json')); // inside the tree: followed
      await write(dir, 'usage/u1/usage.json', JSON.stringify({ tier: 'gold', daily_count: 1 }));
      await write(dir, 'usage/u2/usage.json', JSON.stringify({ tier: 'free', daily_count: -1 }));
      await write(dir, 'usage/u3/usage.json', JSON.stringify({ tier: 'free', daily_count: 2, monthly_count: 3, total_queries: 4 }));

      const reportFile = path.join(tmp, 'bad.jsonl');
      result = await runCli(['import', '--from', dir, '--to', db.url, '--report', reportFile, '--default-user', 'legacy_owner']);
      report = readJsonLines(await fs.readFile(reportFile, 'utf8'));
    });

    const problem = (file: string) => report.find((line) => line.file === file && line.severity === 'error');

    it('exits 1 and imports everything that is valid', async () => {
      expect(result.stderr).not.toMatch(/unexpected error/);
      expect(result.code, result.stdout + result.stderr).toBe(1);
      const ids = (await db.db.sql<{ id: string }[]>`select id from conversations order by id`).map((r) => r.id);
      expect(ids).toEqual(['good-1', 'good-2', 'inside-link', 'no-id', 'shared-id', 'shared-id-dup-599437c676abeb0b']);
      expect(result.stdout).toMatch(/conversations\s+15\s+6\s+0\s+0\s+9/);
      expect(result.stdout).toMatch(/usage\s+3\s+1\s+0\s+0\s+2/);
    });

    it('reports a malformed file with its path, and the rest is imported', () => {
      expect(problem('conversations/u1/broken.json')).toMatchObject({ record: 'broken', reason: expect.stringMatching(/^malformed JSON/) });
    });

    it('takes a missing id from the file name, with a warning', async () => {
      expect(report).toContainEqual(
        expect.objectContaining({
          file: 'conversations/u1/no-id.json',
          record: 'no-id',
          severity: 'warning',
          reason: expect.stringMatching(/file name/),
        }),
      );
      const [row] = await db.db.sql`select user_id, message_count from conversations where id = 'no-id'`;
      expect(row).toEqual({ user_id: 'u1', message_count: 0 });
    });

    it('imports both copies of an id found in two users’ folders: the first keeps it, the other gets a derived id', async () => {
      const reason =
        /id "shared-id" is in 2 files: conversations\/u1\/shared-id.json keeps it; imported conversations\/u2\/shared-id.json as "shared-id-dup-599437c676abeb0b"/;
      for (const file of ['conversations/u1/shared-id.json', 'conversations/u2/shared-id.json']) {
        expect(problem(file)).toBeUndefined();
        expect(report).toContainEqual(expect.objectContaining({ file, severity: 'warning', reason: expect.stringMatching(reason) }));
      }
      const rows = await db.db.sql`select id, user_id from conversations where id like 'shared-id%' order by id`;
      expect(rows).toEqual([
        { id: 'shared-id', user_id: 'u1' },
        { id: 'shared-id-dup-599437c676abeb0b', user_id: 'u2' },
      ]);
    });

    it('rejects wrong types, unknown roles, bad dates, unstorable text and ids that do not match', () => {
      expect(problem('conversations/u1/not-a-list.json')?.reason).toMatch(/messages must be a list/);
      expect(problem('conversations/u1/bad-role.json')?.reason).toMatch(/message 0: unknown role a string of 6 characters/);
      expect(problem('conversations/u1/bad-content.json')?.reason).toMatch(/user content must be a string/);
      expect(problem('conversations/u1/bad-date.json')?.reason).toMatch(/created_at is not a timestamp/);
      expect(problem('conversations/u1/nul.json')?.reason).toMatch(/NUL character/);
      expect(problem('conversations/u1/id-mismatch.json')?.reason).toMatch(/does not match the file name/);
      expect(problem('conversations/u1/bad id!.json')).toMatchObject({ record: null, reason: expect.stringMatching(/not a valid id/) });
    });

    it('does not follow a symlink leading outside --from, and follows one inside', async () => {
      expect(problem('conversations/u1/outside-secret.json')?.reason).toMatch(/symlink leads outside --from: not followed/);
      expect(await db.db.sql`select 1 from conversations where title = 'outside-secret'`).toHaveLength(0);
      const [linked] = await db.db.sql`select user_id from conversations where id = 'inside-link'`;
      expect(linked).toEqual({ user_id: 'u4' });
    });

    it('validates usage files: unknown tier and negative counts rejected, missing fields warned', async () => {
      expect(problem('usage/u1/usage.json')?.reason).toMatch(/unknown tier a string of 4 characters/);
      expect(problem('usage/u2/usage.json')?.reason).toMatch(/daily_count must be an integer/);
      const [u3] = await db.db.sql`select tier, daily_used, last_reset_daily::text as d from usage where user_id = 'u3'`;
      expect(u3).toEqual({ tier: 'free', daily_used: 2, d: '1970-01-01' });
      expect(report).toContainEqual(
        expect.objectContaining({ file: 'usage/u3/usage.json', severity: 'warning', reason: expect.stringMatching(/no last_daily_reset/) }),
      );
    });

    it('logs one import_log row per source record, rejections with their reason', async () => {
      const rows = await db.db.sql<{ record_key: string; status: string; error: string | null }[]>`
        select record_key, status, error from import_log where kind = 'conversation' order by record_key`;
      const byKey = new Map(rows.map((r) => [r.record_key, r]));
      expect(byKey.get('good-1')?.status).toBe('inserted');
      expect(byKey.get('broken')).toMatchObject({ status: 'rejected', error: expect.stringMatching(/malformed JSON/) });
      expect(byKey.get('shared-id')?.status).toBe('inserted');
      expect(byKey.get('shared-id-dup-599437c676abeb0b')?.status).toBe('inserted');
      expect(byKey.get('file:conversations/u1/outside-secret.json')?.status).toBe('rejected');
    });
  });

  it('rejects a conversation of the single-user layout without --default-user', async () => {
    await resetTables();
    const dir = await freshDir('legacy');
    await write(dir, 'conversations/c-1.json', JSON.stringify({ id: 'c-1', created_at: '2024-01-01', messages: [] }));
    const result = await runCli(['import', '--from', dir, '--to', db.url]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/no user_id \(single-user layout\): pass --default-user/);
  });
});

describe('options', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await freshDir('sample');
    await writeSample(dir, { users: 3, conversations: 4, messages: 6, seed: 7 });
  });
  beforeEach(resetTables);

  it('--dry-run reads, validates and compares, and writes nothing', async () => {
    const result = await runCli(importArgs(dir, '--dry-run'));
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/dry run: nothing written/);
    expect(result.stdout).toMatch(/conversations\s+12\s+12\s+0\s+0\s+0/);
    const [counts] = await db.db.sql`
      select (select count(*) from conversations)::int as c, (select count(*) from messages)::int as m,
             (select count(*) from usage)::int as u, (select count(*) from import_log)::int as l`;
    expect(counts).toEqual({ c: 0, m: 0, u: 0, l: 0 });
  });

  it('--only usage imports only the usage files', async () => {
    const result = await runCli(importArgs(dir, '--only', 'usage'));
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const [counts] = await db.db.sql`select (select count(*) from conversations)::int as c, (select count(*) from usage)::int as u`;
    expect(counts).toEqual({ c: 0, u: 3 });
  });

  it('--batch 1 --jobs 3 gives the same tables as the defaults', async () => {
    expect((await runCli(importArgs(dir))).code).toBe(0);
    const reference = await dumpTables(db.db.sql, { portable: true });
    await resetTables();
    expect((await runCli(importArgs(dir, '--batch', '1', '--jobs', '3'))).code).toBe(0);
    expect(await dumpTables(db.db.sql, { portable: true })).toEqual(reference);
  });

  it('the three load methods (copy, staging, json) write identical tables, first load and edits alike', async () => {
    const file = (await fs.readdir(path.join(dir, 'conversations'), { recursive: true })).find((f) => f.endsWith('.json'))!;
    const abs = path.join(dir, 'conversations', file);
    const original = await fs.readFile(abs, 'utf8');
    const dumps: Record<string, string>[] = [];
    try {
      for (const method of ['copy', 'staging', 'json']) {
        await fs.writeFile(abs, original);
        await resetTables();
        expect((await runCli(importArgs(dir, '--load-method', method))).code).toBe(0);
        // A shorter conversation with a new title: staging's merge must drop the trailing messages.
        const doc = JSON.parse(original);
        doc.messages = doc.messages.slice(0, 2);
        doc.title = 'edited';
        await fs.writeFile(abs, JSON.stringify(doc));
        const edited = await runCli(importArgs(dir, '--load-method', method));
        expect(edited.stdout).toMatch(/conversations\s+12\s+0\s+1\s+11/);
        dumps.push(await dumpTables(db.db.sql, { portable: true }));
      }
    } finally {
      await fs.writeFile(abs, original);
    }
    expect(dumps[1]).toEqual(dumps[0]);
    expect(dumps[2]).toEqual(dumps[0]);
  });

  it('--backup writes a tar.gz of the source tree listing every file with its sha256, before importing', async () => {
    const archive = path.join(tmp, 'backup.tar.gz');
    await fs.rm(archive, { force: true });
    const before = await snapshotTree(dir);
    const result = await runCli(importArgs(dir, '--backup', archive));
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/backup: .*backup.tar.gz — 15 files/);
    expect(await snapshotTree(dir)).toEqual(before);

    const extracted = await freshDir('extracted');
    execFileSync('tar', ['-xzf', archive, '-C', extracted]);
    const manifest = JSON.parse(await fs.readFile(path.join(extracted, MANIFEST_NAME), 'utf8')) as {
      files: Array<{ path: string; size: number; sha256: string }>;
    };
    const sourceFiles = [...before.keys()].sort();
    expect(manifest.files.map((f) => f.path).sort()).toEqual(sourceFiles);
    for (const entry of manifest.files) {
      const bytes = await fs.readFile(path.join(dir, entry.path));
      expect(entry.size).toBe(bytes.length);
      expect(entry.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
      expect(await fs.readFile(path.join(extracted, entry.path))).toEqual(bytes);
    }

    const inside = await runCli(importArgs(dir, '--backup', path.join(dir, 'b.tar.gz')));
    expect(inside.code).toBe(2);
    expect(inside.stderr).toMatch(/inside --from/);
  });

  it('sample-data writes a corpus that imports cleanly', async () => {
    const target = path.join(tmp, 'generated');
    await fs.rm(target, { recursive: true, force: true });
    const generated = await runCli(['sample-data', target, '--users', '2', '--conversations', '3', '--messages', '4']);
    expect(generated.code, generated.stderr).toBe(0);
    expect(generated.stdout).toMatch(/wrote 2 users, 6 conversations/);
    const again = await runCli(['sample-data', target]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/not empty/);
    const imported = await runCli(importArgs(target));
    expect(imported.code, imported.stdout + imported.stderr).toBe(0);
  });

  it('--help shows examples', async () => {
    const help = await runCli(['import', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Examples:/);
    expect(help.stdout).toMatch(/--default-user/);
  });
});
