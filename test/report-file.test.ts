import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSample } from '../src/transfer/sample.ts';
import { runCli, write } from './fixtures/import-corpus.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * `--report FILE` that cannot be written — not creatable (its parent is a
 * regular file; tests may run as root, who ignores permissions), or a disk
 * that fills up mid-run (/dev/full: every write fails with ENOSPC) — ends
 * import and verify with exit 2 and one line naming the file, promptly, and
 * leaves no transaction or lock behind: the next import runs.
 */

let tmp: string;
let dir: string;
let db: TestDatabase;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-report-'));
  dir = path.join(tmp, 'data');
  await writeSample(dir, { users: 3, conversations: 8, messages: 4, seed: 11 });
  // Problems to report: files that cannot be read as conversations.
  for (let i = 0; i < 30; i++) await write(dir, `conversations/user_bad/broken-${i}.json`, `{"id": "broken-${i}", `);
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.drop();
  await fs.rm(tmp, { recursive: true, force: true });
});

const BOUND_MS = 30_000;

async function timed(args: string[]) {
  const started = performance.now();
  const result = await runCli(args, { timeoutMs: BOUND_MS * 2 });
  return { ...result, ms: performance.now() - started };
}

function expectOneLineNaming(stderr: string, file: string, reason: RegExp): void {
  const lines = stderr.trim().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toContain(`--report ${file}: cannot write`);
  expect(lines[0]).toMatch(reason);
}

async function expectNothingLeftOpen(target: TestDatabase): Promise<void> {
  const [row] = await target.db.sql<{ sessions: number; locks: number }[]>`
    select
      (select count(*) from pg_stat_activity where datname = current_database() and application_name like 'pgferry %')::int as sessions,
      (select count(*) from pg_locks where locktype = 'advisory'
         and database = (select oid from pg_database where datname = current_database()))::int as locks`;
  expect(row).toEqual({ sessions: 0, locks: 0 });
  const next = await timed(['import', '--from', dir, '--to', target.url]);
  expect(next.stderr).not.toMatch(/another pgferry import is running/);
  expect(next.stdout).toMatch(/import summary/);
  expect(next.code, next.stderr).toBe(1); // the broken files are rejected, as they should be
}

describe('a --report file that cannot be written', () => {
  it('cannot be created (its parent is a file): exit 2 before anything runs', async () => {
    const notADirectory = path.join(tmp, 'plain-file');
    await fs.writeFile(notADirectory, 'x');
    const report = path.join(notADirectory, 'report.jsonl');
    for (const command of ['import', 'verify']) {
      const run = await timed([command, '--from', dir, '--to', db.url, '--report', report]);
      expect(run.code, run.stderr).toBe(2);
      expectOneLineNaming(run.stderr, report, /ENOTDIR/);
      expect(run.ms).toBeLessThan(BOUND_MS);
    }
    await expectNothingLeftOpen(db);
  });

  it.skipIf(!existsSync('/dev/full'))('fills up mid-run (/dev/full): import and verify stop with exit 2, nothing left open', async () => {
    const fresh = await createTestDatabase();
    try {
      const imported = await timed(['import', '--from', dir, '--to', fresh.url, '--report', '/dev/full', '--batch', '2', '--jobs', '1']);
      expect(imported.code, imported.stdout + imported.stderr).toBe(2);
      expectOneLineNaming(imported.stderr, '/dev/full', /ENOSPC.*the run stopped and the report is incomplete/);
      expect(imported.ms).toBeLessThan(BOUND_MS);

      const verified = await timed(['verify', '--from', dir, '--to', fresh.url, '--report', '/dev/full']);
      expect(verified.code, verified.stdout + verified.stderr).toBe(2);
      expectOneLineNaming(verified.stderr, '/dev/full', /ENOSPC/);
      expect(verified.ms).toBeLessThan(BOUND_MS);
      await expectNothingLeftOpen(fresh);
    } finally {
      await fresh.drop();
    }
  });
});
