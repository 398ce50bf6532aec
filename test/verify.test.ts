import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalConversation, hashCanonical, hashConversation, jsonbText } from '../src/transfer/canonical.ts';
import { writeSample } from '../src/transfer/sample.ts';
import { readJsonLines, runCli, write, writeQuirksCorpus } from './fixtures/import-corpus.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * `pgferry verify` must prove the database holds what the files hold — and
 * catch each kind of tampering named in issue 4. Hashes are computed from the
 * database rows, so a change made behind import's back (import_log still
 * says "imported") is found.
 */

let tmp: string;
let dir: string;
let db: TestDatabase;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-verify-'));
  dir = path.join(tmp, 'data');
  await writeSample(dir, { users: 3, conversations: 5, messages: 8, seed: 11 });
  await writeQuirksCorpus(dir);
  db = await createTestDatabase();
  const imported = await runCli(['import', '--from', dir, '--to', db.url, '--default-user', 'owner_1']);
  expect(imported.code, imported.stdout + imported.stderr).toBe(0);
});

afterAll(async () => {
  await db?.drop();
  await fs.rm(tmp, { recursive: true, force: true });
});

async function verify(...extra: string[]) {
  const reportFile = path.join(tmp, `verify-${Math.random().toString(36).slice(2)}.jsonl`);
  const result = await runCli(['verify', '--from', dir, '--to', db.url, '--default-user', 'owner_1', '--report', reportFile, ...extra]);
  const report = readJsonLines(await fs.readFile(reportFile, 'utf8').catch(() => ''));
  return { ...result, report };
}

/** Apply a change to the database, run verify, undo the change. */
async function tampered(change: string, undo: string) {
  const sql = db.db.sql;
  await sql.unsafe(change);
  try {
    return await verify();
  } finally {
    await sql.unsafe(undo);
  }
}

describe('verify', () => {
  it('passes on a database that holds exactly the files', async () => {
    const result = await verify();
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/conversations\s+19\s+19\s+0\s+0\s+0\s+0/);
    expect(result.stdout).toMatch(/usage\s+5\s+5\s+0\s+0\s+0\s+0/);
    expect(result.stdout).toMatch(/OK: the database holds exactly what the files hold/);
    expect(result.report).toEqual([]);
  });

  it("catches one message's content changed in the database", async () => {
    const result = await tampered(
      "update messages set content = content || '!' where conversation_id = 'conv-a1' and position = 2",
      "update messages set content = left(content, -1) where conversation_id = 'conv-a1' and position = 2",
    );
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/conversations\s+19\s+18\s+0\s+1\s+0\s+0/);
    expect(result.report).toEqual([
      expect.objectContaining({
        problem: 'different',
        kind: 'conversation',
        record: 'conv-a1',
        reason: 'message 2 differs',
        file: 'conversations/user_a/conv-a1.json',
      }),
    ]);
    // import_log is not what verify trusts: it still says all is well.
    const [log] = await db.db.sql`select status from import_log where record_key = 'conv-a1'`;
    expect(log!.status).toBe('inserted');
  });

  it('catches a change inside stage data (JSONB)', async () => {
    const result = await tampered(
      `update messages set stage3_data = jsonb_set(stage3_data, '{response}', '"forged"') where conversation_id = 'conv-a1' and position = 1`,
      `update messages set stage3_data = jsonb_set(stage3_data, '{response}', '"final"') where conversation_id = 'conv-a1' and position = 1`,
    );
    expect(result.code).toBe(1);
    expect(result.report).toEqual([expect.objectContaining({ problem: 'different', record: 'conv-a1', reason: 'message 1 differs' })]);
  });

  it('catches one conversation deleted', async () => {
    await db.db.sql`delete from conversations where id = 'conv-b1'`;
    const result = await verify();
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/conversations\s+19\s+18\s+1\s+0\s+0\s+0/);
    expect(result.report).toEqual([
      expect.objectContaining({ problem: 'missing', record: 'conv-b1', file: 'conversations/user_b/conv-b1.json' }),
    ]);
    // import puts it back (its row is gone, whatever import_log says), and verify agrees again.
    const repaired = await runCli(['import', '--from', dir, '--to', db.url, '--default-user', 'owner_1']);
    expect(repaired.stdout).toMatch(/conversations\s+19\s+1\s+0\s+18\s+0/);
    expect((await verify()).code).toBe(0);
  });

  it('catches one extra row: a conversation, or a message, the files do not have', async () => {
    const extraConversation = await tampered(
      "insert into conversations (id, user_id, title) values ('not-in-files', 'user_a', 'sneaked in')",
      "delete from conversations where id = 'not-in-files'",
    );
    expect(extraConversation.code).toBe(1);
    expect(extraConversation.stdout).toMatch(/conversations\s+19\s+19\s+0\s+0\s+1\s+0/);
    expect(extraConversation.report).toEqual([expect.objectContaining({ problem: 'extra', record: 'not-in-files', file: null })]);

    const extraMessage = await tampered(
      "insert into messages (conversation_id, position, role, content) values ('conv-b1', 1, 'user', 'sneaked in')",
      "delete from messages where conversation_id = 'conv-b1' and position = 1",
    );
    expect(extraMessage.code).toBe(1);
    expect(extraMessage.report).toEqual([
      expect.objectContaining({
        problem: 'different',
        record: 'conv-b1',
        reason: 'message 1: in the database only (2 messages there, 1 in the source)',
      }),
    ]);

    const extraUsage = await tampered(
      "insert into usage (user_id, tier) values ('ghost', 'free')",
      "delete from usage where user_id = 'ghost'",
    );
    expect(extraUsage.code).toBe(1);
    expect(extraUsage.report).toEqual([expect.objectContaining({ problem: 'extra', kind: 'usage', record: 'ghost' })]);
  });

  it('catches one usage count changed', async () => {
    const result = await tampered(
      "update usage set daily_used = daily_used + 1 where user_id = 'user_a'",
      "update usage set daily_used = daily_used - 1 where user_id = 'user_a'",
    );
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/usage\s+5\s+4\s+0\s+1\s+0\s+0/);
    expect(result.report).toEqual([
      expect.objectContaining({ problem: 'different', kind: 'usage', record: 'user_a', reason: 'dailyUsed: source 3, database 4' }),
    ]);
  });

  it('catches a changed owner, title or creation time', async () => {
    const owner = await tampered(
      "update conversations set user_id = 'user_b' where id = 'conv-a2'",
      "update conversations set user_id = 'user_a' where id = 'conv-a2'",
    );
    expect(owner.report).toEqual([expect.objectContaining({ record: 'conv-a2', reason: 'user_id: source "user_a", database "user_b"' })]);
    const title = await tampered(
      "update conversations set title = 'x' where id = 'conv-a2'",
      "update conversations set title = 'Café ☕ — 数据' where id = 'conv-a2'",
    );
    expect(title.report).toEqual([
      expect.objectContaining({ record: 'conv-a2', reason: expect.stringMatching(/^title differs: source \d+ characters, database \d+$/) }),
    ]);
    const created = await tampered(
      "update conversations set created_at = created_at + interval '1 microsecond' where id = 'conv-a1'",
      "update conversations set created_at = created_at - interval '1 microsecond' where id = 'conv-a1'",
    );
    expect(created.report).toEqual([expect.objectContaining({ record: 'conv-a1', reason: expect.stringMatching(/^created_at differs/) })]);
  });

  it('counts a source file it cannot read against the result', async () => {
    const broken = await write(dir, 'conversations/user_b/broken.json', '{"id": "broken",');
    try {
      const result = await verify();
      expect(result.code).toBe(1);
      expect(result.report).toEqual([
        expect.objectContaining({ problem: 'unreadable', record: 'broken', reason: expect.stringMatching(/malformed JSON/) }),
      ]);
    } finally {
      await fs.rm(broken);
    }
  });

  it('an unreadable --from directory is a usage error', async () => {
    const result = await runCli(['verify', '--from', path.join(tmp, 'nope'), '--to', db.url]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/cannot read --from directory/);
  });
});

describe('canonical form', () => {
  it('jsonbText prints any JSON value exactly as PostgreSQL prints it back from jsonb', async () => {
    const value = fc.oneof(
      fc.jsonValue({ maxDepth: 4, stringUnit: 'grapheme' }),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.dictionary(
        fc.string({ unit: 'grapheme', maxLength: 6 }),
        fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.string()),
      ),
    );
    const samples = fc
      .sample(value, { numRuns: 400, seed: 42 })
      .map((v) => JSON.stringify(v))
      .filter((text) => text !== undefined && !text.includes('\\u0000'))
      .map((text) => JSON.parse(text) as unknown);
    const rows = await db.db.sql<{ out: string }[]>`
      select t::jsonb::text as out from unnest(${samples.map((v) => JSON.stringify(v))}::text[]) with ordinality as x(t, n) order by n`;
    expect(rows).toHaveLength(samples.length);
    samples.forEach((v, i) => {
      expect(jsonbText(v), JSON.stringify(v)).toBe(rows[i]!.out);
    });
  });

  it('non-finite numbers are the tagged object, as stored', async () => {
    expect(jsonbText([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])).toBe(
      '[{"$pgferry:float": "NaN"}, {"$pgferry:float": "Infinity"}, {"$pgferry:float": "-Infinity"}]',
    );
    const [row] = await db.db.sql<{ out: string }[]>`select ${'{"$pgferry:float": "NaN"}'}::text::jsonb::text as out`;
    expect(row!.out).toBe(jsonbText(Number.NaN));
  });

  it('hashing a conversation piece by piece equals hashing its canonical text', () => {
    const head = { id: 'c', userId: 'u', title: 'T "q"', createdUs: 1_714_558_830_123_456 };
    for (const messages of [[], ['{"content":"a","role":"user"}'], ['{"x":1}', '{"y":2}', '{"z":3}']]) {
      expect(hashConversation(head, messages)).toBe(hashCanonical(canonicalConversation(head, messages)));
    }
  });
});
