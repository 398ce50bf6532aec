import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TIER_LIMITS } from '../src/config.ts';
import { runImport } from '../src/transfer/import.ts';
import { allKinds, kindNames, registerKind, unregisterKind } from '../src/transfer/kinds/index.ts';
import { ProblemReport } from '../src/transfer/report.ts';
import { resolveSourceRoot } from '../src/transfer/source.ts';
import { runVerify } from '../src/transfer/verify.ts';
import { runCli, write } from './fixtures/import-corpus.ts';
import { notesKind } from './fixtures/notes-kind.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * The kind registry (src/transfer/kinds/): the engine knows kinds only
 * through their descriptors, so a new kind is one folder plus one registry
 * line. The last block proves it with a kind the engine has never heard of.
 */

let tmp: string;
let db: TestDatabase;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-kinds-'));
  db = await createTestDatabase();
});

afterAll(async () => {
  unregisterKind(notesKind.name);
  await db?.drop();
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('the registry', () => {
  it('lists the chat app kinds, conversations then usage, then the forms app kinds, submissions then jobs', () => {
    expect(kindNames()).toEqual(['conversations', 'usage', 'submissions', 'jobs']);
    expect(allKinds().map((k) => [k.name, k.logKind, k.folders])).toEqual([
      ['conversations', 'conversation', ['conversations']],
      ['usage', 'usage', ['usage']],
      ['submissions', 'submission', ['submissions']],
      ['jobs', 'job', ['jobs']],
    ]);
  });

  it('--only takes registry names and rejects others with exit 2, naming the valid ones', async () => {
    const dir = path.join(tmp, 'only');
    await write(dir, 'usage/u1/usage.json', JSON.stringify({ tier: 'free', daily_used: 1, monthly_used: 2, total_queries: 3 }));
    for (const command of ['import', 'verify']) {
      const bad = await runCli([command, '--from', dir, '--to', db.url, '--only', 'usage,invoices']);
      expect(bad.code, bad.stderr).toBe(2);
      expect(bad.stderr).toMatch(/--only.*expected a comma-separated list of conversations, usage, submissions, jobs; unknown: invoices/);
    }
    const imported = await runCli(['import', '--from', dir, '--to', db.url, '--only', 'usage']);
    expect(imported.code, imported.stdout + imported.stderr).toBe(0);
    expect(imported.stdout).toMatch(/usage\s+1\s+1\s+0\s+0\s+0/);
    expect(imported.stdout).not.toMatch(/^conversations/m);
    const verified = await runCli(['verify', '--from', dir, '--to', db.url, '--only', 'usage']);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
  });
});

describe('a kind added through the public registry API, with no engine change', () => {
  let dir: string;
  const common = () => ({ root: dir, db: db.db, kinds: ['notes'] });
  const importNotes = (more: { prune?: boolean } = {}) =>
    runImport({ ...common(), tierLimits: DEFAULT_TIER_LIMITS, readers: 2, batchSize: 25, ...more });
  const verifyNotes = (report?: ProblemReport) => runVerify({ ...common(), readers: 2, batchSize: 25, report });

  beforeAll(async () => {
    registerKind(notesKind);
    await db.db.sql`create table test_notes (id text primary key, text text not null)`;
    dir = path.join(tmp, 'notes-tree');
    // Enough files that reading goes to reader threads, which load the kind from its module.
    for (let i = 0; i < 80; i++) await write(dir, `notes/n${i}.json`, JSON.stringify({ text: `note ${i}` }));
    await write(dir, 'notes/broken.json', '{"text": ');
  });

  it('is registered after the built-in kinds, and a tree with only its folder is a valid --from', async () => {
    expect(kindNames()).toEqual(['conversations', 'usage', 'submissions', 'jobs', 'notes']);
    expect(await resolveSourceRoot(dir, allKinds())).toBe(await fs.realpath(dir));
    await expect(resolveSourceRoot(path.join(dir, 'notes'), allKinds())).rejects.toThrow(
      /has no conversations\/ or usage\/ or submissions\/ or jobs\/ or notes\/ folder.*did you mean its parent/,
    );
  });

  it('imports it: rows written, import_log kept under its log kind, a rejection reported; a second run writes nothing', async () => {
    const report = new ProblemReport();
    const first = await runImport({ ...common(), tierLimits: DEFAULT_TIER_LIMITS, readers: 2, batchSize: 25, report });
    expect(first.kinds).toEqual({
      notes: { read: 81, inserted: 80, updated: 0, unchanged: 0, rejected: 1, warnings: 0, vanished: 0, pruned: 0 },
    });
    expect(first.messages).toBe(0);
    expect(report.first.map((l) => [l.kind, l.file, l.record])).toEqual([['note', 'notes/broken.json', 'broken']]);
    expect(await db.db.sql`select count(*)::int as count from test_notes`).toEqual([{ count: 80 }]);
    const log = await db.db.sql<{ status: string; n: number }[]>`
      select status, count(*)::int as n from import_log where kind = 'note' group by status order by status`;
    expect(log).toEqual([
      { status: 'inserted', n: 80 },
      { status: 'rejected', n: 1 },
    ]);
    const again = await importNotes();
    expect(again.kinds.notes).toMatchObject({ inserted: 0, updated: 0, unchanged: 80, rejected: 1 });
  });

  it('verifies it: identical, then a changed row, an extra row and a missing one are each named', async () => {
    await fs.rm(path.join(dir, 'notes/broken.json'));
    const clean = await verifyNotes();
    expect(clean.ok).toBe(true);
    expect(clean.kinds).toEqual({ notes: { source: 80, matched: 80, missing: 0, different: 0, extra: 0, unreadable: 0 } });

    await db.db.sql`update test_notes set text = 'edited' where id = 'n7'`;
    await db.db.sql`delete from test_notes where id = 'n8'`;
    await db.db.sql`insert into test_notes (id, text) values ('stray', 'no file')`;
    const report = new ProblemReport();
    const dirty = await verifyNotes(report);
    expect(dirty.ok).toBe(false);
    expect(dirty.kinds.notes).toEqual({ source: 80, matched: 78, missing: 1, different: 1, extra: 1, unreadable: 0 });
    expect(report.first.map((l) => [l.problem, l.kind, l.record, l.reason])).toEqual(
      expect.arrayContaining([
        ['different', 'note', 'n7', 'text: source "note 7", database "edited"'],
        ['missing', 'note', 'n8', 'in the source but not in the database'],
        ['extra', 'note', 'stray', 'in the database but no source file has it'],
      ]),
    );
  });

  it('prunes it: a record whose file is gone is reported, and deleted with prune', async () => {
    // Import trusts import_log for a row that is there (n7's edit stays): put it back by hand; n8's row is gone, so import writes it again.
    await db.db.sql`update test_notes set text = 'note 7' where id = 'n7'`;
    expect((await importNotes()).kinds.notes).toMatchObject({ inserted: 1, unchanged: 79 });
    await fs.rm(path.join(dir, 'notes/n3.json'));
    const reported = await importNotes();
    expect(reported.kinds.notes).toMatchObject({ read: 79, vanished: 1, pruned: 0 });
    const pruned = await importNotes({ prune: true });
    expect(pruned.kinds.notes).toMatchObject({ vanished: 1, pruned: 1 });
    expect(await db.db.sql`select id from test_notes where id = 'n3'`).toEqual([]);
    await db.db.sql`delete from test_notes where id = 'stray'`;
    expect((await verifyNotes()).ok).toBe(true);
  });
});
