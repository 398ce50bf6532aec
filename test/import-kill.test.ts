import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSample } from '../src/transfer/sample.ts';
import { BIN, dumpTables, REPO, runCli, writeQuirksCorpus } from './fixtures/import-corpus.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * Resumability (issue 4): killed with SIGKILL at any moment, a re-run ends
 * with tables identical to an uninterrupted run's, with no duplicates; Ctrl-C
 * finishes the batches in flight and exits cleanly, saying how to resume.
 *
 * To widen the window between a batch's writes and its COMMIT, the test
 * gives its own database a trigger that sleeps once per import_log write (the
 * last statement of every batch transaction): a kill timed after a commit
 * lands inside the next transaction. Nothing in pgferry knows about it.
 */

let tmp: string;
let dir: string;
let reference: TestDatabase;
let referenceDump: Record<string, string>;

const BATCH = ['--batch', '3', '--jobs', '2', '--default-user', 'owner_1'];

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-kill-'));
  dir = path.join(tmp, 'data');
  await writeSample(dir, { users: 4, conversations: 6, messages: 6, seed: 3 });
  await writeQuirksCorpus(dir);
  reference = await createTestDatabase();
  const result = await runCli(['import', '--from', dir, '--to', reference.url, ...BATCH]);
  expect(result.code, result.stdout + result.stderr).toBe(0);
  referenceDump = await dumpTables(reference.db.sql, { portable: true });
});

afterAll(async () => {
  await reference?.drop();
  await fs.rm(tmp, { recursive: true, force: true });
});

/** Hold every batch transaction open for `ms` after its writes, before COMMIT (PostgreSQL-side; 0 removes the hold). */
async function holdCommits(db: TestDatabase, ms: number): Promise<void> {
  await db.db.sql.unsafe(`
    create or replace function test_hold_commit() returns trigger language plpgsql as $$
    begin
      perform pg_sleep(tg_argv[0]::float8);
      return null;
    end $$;
    drop trigger if exists test_hold_commit on import_log;`);
  if (ms > 0) {
    await db.db.sql.unsafe(
      `create trigger test_hold_commit after insert on import_log for each statement execute function test_hold_commit('${ms / 1000}')`,
    );
  }
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  commits: number;
}

/**
 * Start an import and, once `afterCommits` batches have committed, send
 * `signal` after `delayMs` (inside the next batch's transaction when the delay
 * is shorter than the commit delay).
 */
function importUntil(url: string, options: { afterCommits: number; delayMs: number; signal: NodeJS.Signals }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const { DATABASE_URL: _ignored, ...env } = process.env;
    const child = spawn(process.execPath, [BIN, 'import', '--from', dir, '--to', url, ...BATCH], {
      cwd: REPO,
      env: { ...env, LOG_LEVEL: 'debug' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let commits = 0;
    let sent = false;
    let pending = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.includes('"batch committed"')) continue;
        commits++;
        if (!sent && commits >= options.afterCommits) {
          sent = true;
          setTimeout(() => child.kill(options.signal), options.delayMs);
        }
      }
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, commits });
    });
  });
}

/** What must hold after any interruption: no half-written conversation, no log row without its data. */
async function expectConsistent(db: TestDatabase): Promise<void> {
  const [row] = await db.db.sql<{ bad_counts: number; orphans: number; duplicates: number }[]>`
    select
      (select count(*) from conversations c
        where c.message_count <> (select count(*) from messages m where m.conversation_id = c.id))::int as bad_counts,
      (select count(*) from import_log l
        where l.kind = 'conversation' and l.status = 'inserted'
          and not exists (select 1 from conversations c where c.id = l.record_key))::int as orphans,
      (select count(*) from (select conversation_id, position from messages group by 1, 2 having count(*) > 1) d)::int as duplicates`;
  expect(row).toEqual({ bad_counts: 0, orphans: 0, duplicates: 0 });
}

describe('kill -9 and resume', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('ends, after kills at several moments, with tables identical to an uninterrupted run', async () => {
    const moments = [
      { afterCommits: 1, delayMs: 100 }, // inside the second batch's transaction
      { afterCommits: 2, delayMs: 0 }, // right after a commit
      { afterCommits: 1, delayMs: 250 }, // around the next commit
      { afterCommits: 3, delayMs: 50 },
    ];
    let killed = 0;
    await holdCommits(db, 200);
    for (const moment of moments) {
      const run = await importUntil(db.url, { ...moment, signal: 'SIGKILL' });
      if (run.signal === 'SIGKILL') killed++;
      await expectConsistent(db);
    }
    // The corpus outlasts the kills: most of them really interrupted an import.
    expect(killed).toBeGreaterThanOrEqual(3);
    const [partial] = await db.db.sql<{ n: number }[]>`select count(*)::int as n from import_log`;
    expect(partial!.n).toBeGreaterThan(0);

    await holdCommits(db, 0);
    const final = await runCli(['import', '--from', dir, '--to', db.url, ...BATCH]);
    expect(final.code, final.stdout + final.stderr).toBe(0);
    expect(final.stdout).toMatch(/unchanged/);
    await expectConsistent(db);
    expect(await dumpTables(db.db.sql, { portable: true })).toEqual(referenceDump);

    // And it stays that way.
    const again = await runCli(['import', '--from', dir, '--to', db.url, ...BATCH]);
    expect(again.stdout).toMatch(/Nothing to change/);
  });
});

describe('Ctrl-C', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('finishes the batches in flight, exits 130 and says how to resume; the re-run completes', async () => {
    await holdCommits(db, 300);
    const run = await importUntil(db.url, { afterCommits: 1, delayMs: 50, signal: 'SIGINT' });
    expect(run.signal).toBeNull();
    expect(run.code).toBe(130);
    expect(run.stdout).toMatch(/Interrupted: the batches in flight were committed\. Run the same command again to resume/);
    await expectConsistent(db);
    const [partial] = await db.db.sql<{ n: number }[]>`select count(*)::int as n from conversations`;
    expect(partial!.n).toBeGreaterThan(0);
    expect(partial!.n).toBeLessThan(28);

    await holdCommits(db, 0);
    const resumed = await runCli(['import', '--from', dir, '--to', db.url, ...BATCH]);
    expect(resumed.code, resumed.stdout + resumed.stderr).toBe(0);
    expect(await dumpTables(db.db.sql, { portable: true })).toEqual(referenceDump);
  });
});
