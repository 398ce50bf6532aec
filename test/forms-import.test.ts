import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sql } from '../src/db/database.ts';
import { BAD_FILES, FORMS_EXPECTED, writeFormsBulk, writeFormsCorpus } from './fixtures/forms-corpus.ts';
import { BIN, REPO, readJsonLines, runCli, snapshotTree } from './fixtures/import-corpus.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * `pgferry import` / `verify` of the forms app's generated/ tree (issue 10,
 * part 3): every shape of REAL-FORMATS section A in or reported, re-runs
 * change nothing, kill -9 + re-run equals an uninterrupted run, verify is
 * clean and catches tampering. The CLI as a user runs it, a real PostgreSQL.
 */

let tmp: string;
let db: TestDatabase;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-forms-'));
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

async function resetTables(target: TestDatabase = db): Promise<void> {
  await target.db.sql`truncate submissions, jobs, uploaded_files, import_log`;
}

const FORMS = ['--only', 'submissions,jobs'];

/** The forms tables as text, without what the database invents (ids, updated_at). */
async function dumpForms(sql: Sql): Promise<Record<string, string>> {
  const submissions = await sql`
    select submission_id, module, user_id, status, site_name, visit_date::text, form_data::text, created_at, submitted_by_ip
      from submissions order by submission_id`;
  const files = await sql`
    select s.submission_id, f.field, f.cloudinary_url, f.cloudinary_public_id, f.file_type, f.original_filename, f.file_size, f.is_cloud, f.uploaded_at
      from uploaded_files f join submissions s on s.id = f.submission_id order by s.submission_id, f.id`;
  const jobs = await sql`
    select j.job_id, s.submission_id as link, j.status, j.progress, j.results::text, j.excel_url, j.pdf_url, j.error_message, j.meta::text,
           j.created_at, j.started_at, j.completed_at
      from jobs j left join submissions s on s.id = j.submission_id order by j.job_id`;
  const log = await sql`select kind, record_key, source, content_hash, status, error from import_log order by kind, record_key`;
  const text = (rows: unknown) => JSON.stringify(rows, (_k, v) => (typeof v === 'bigint' ? String(v) : v));
  return { submissions: text(submissions), files: text(files), jobs: text(jobs), import_log: text(log) };
}

describe('the corpus: every shape of REAL-FORMATS A', () => {
  let dir: string;
  let reportFile: string;
  beforeAll(async () => {
    await resetTables();
    dir = await freshDir('corpus');
    reportFile = path.join(tmp, 'report.jsonl');
    await writeFormsCorpus(dir);
  });

  it('imports every good file and reports every bad one with its path and reason; the source is untouched', async () => {
    const before = await snapshotTree(dir);
    const result = await runCli(['import', '--from', dir, '--to', db.url, '--report', reportFile, '--source-timezone', 'Asia/Dubai']);
    expect(result.stderr).not.toMatch(/unexpected error/);
    expect(result.code, result.stdout + result.stderr).toBe(1); // something was rejected
    const subRead = FORMS_EXPECTED.submissions + FORMS_EXPECTED.badSubmissions;
    const jobRead = FORMS_EXPECTED.jobs + FORMS_EXPECTED.badJobs;
    expect(result.stdout).toMatch(
      new RegExp(`submissions\\s+${subRead}\\s+${FORMS_EXPECTED.submissions}\\s+0\\s+0\\s+${FORMS_EXPECTED.badSubmissions}\\s`),
    );
    expect(result.stdout).toMatch(new RegExp(`jobs\\s+${jobRead}\\s+${FORMS_EXPECTED.jobs}\\s+0\\s+0\\s+${FORMS_EXPECTED.badJobs}\\s`));
    // The chat kinds have nothing here and are not listed.
    expect(result.stdout).not.toMatch(/^conversations/m);
    expect(await snapshotTree(dir)).toEqual(before);

    const report = readJsonLines(await fs.readFile(reportFile, 'utf8'));
    for (const bad of BAD_FILES) {
      const line = report.find((l) => l.file === bad.rel && l.severity === 'error');
      expect(line, bad.rel).toBeDefined();
      expect(line!.reason, bad.rel).toMatch(bad.reason);
    }
    // Every record is in the database or reported as an error: nothing silently dropped.
    const [counts] = await db.db.sql<{ s: number; j: number }[]>`
      select (select count(*) from submissions)::int as s, (select count(*) from jobs)::int as j`;
    expect(counts).toEqual({ s: FORMS_EXPECTED.submissions, j: FORMS_EXPECTED.jobs });
    expect(report.filter((l) => l.severity === 'error')).toHaveLength(BAD_FILES.length);

    // Warnings across records, not rejects.
    const warning = (file: string, pattern: RegExp) =>
      expect(
        report.some((l) => l.severity === 'warning' && l.file === file && pattern.test(String(l.reason))),
        `${file} ${pattern}`,
      ).toBe(true);
    warning('jobs/job_ffee00112233.json', /submission "sub_000000000000", which is not in the database/);
    warning('submissions/sub_e3b27c05d9a1.json', /submission without a job/);
    warning('sub_9d8c7b6a5f4e.json', /submission without a job/);
    warning('submissions/sub_b1e0c3d7f2a9.json', /not a date/);
  });

  it('reads back what the files say: derived columns, file rows, jobs and their links', async () => {
    const subs = await db.db.sql<
      { submission_id: string; module: string; site_name: string; visit_date: string | null; status: string; files: number }[]
    >`
      select s.submission_id, s.module, s.site_name, s.visit_date::text, s.status,
             (select count(*) from uploaded_files f where f.submission_id = s.id)::int as files
        from submissions s order by submission_id`;
    const by = Object.fromEntries(subs.map((s) => [s.submission_id, s]));
    expect(by.sub_8b31f6d2a0ce).toMatchObject({
      module: 'cleaning',
      site_name: 'Yas Acres',
      visit_date: '2025-12-22',
      status: 'completed',
      files: 3,
    });
    expect(by.sub_19af03c7be58).toMatchObject({ module: 'hvac_mep', site_name: 'Khalifa City Clinic', files: 1 });
    expect(by.sub_e3b27c05d9a1).toMatchObject({ module: 'civil', site_name: 'Saadiyat Villa 12', files: 1 });
    expect(by.sub_9d8c7b6a5f4e).toMatchObject({ module: 'cleaning', files: 2 });
    expect(by.sub_b1e0c3d7f2a9!.visit_date).toBeNull();
    // naive-local `timestamp` in Asia/Dubai (UTC+4); naive created_at stays UTC.
    const [times] = await db.db.sql<{ s4: string; s3: string }[]>`
      select (select to_char(created_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') from submissions where submission_id = 'sub_19af03c7be58') as s4,
             (select to_char(created_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') from submissions where submission_id = 'sub_7d4be1c09a22') as s3`;
    expect(times).toEqual({ s4: '2025-12-22 08:40:55.104330', s3: '2025-12-20 08:14:03.512907' });
    // The whole document is form_data, inline base64 included; Arabic text from \u escapes.
    const [doc] = await db.db.sql<{ sig: string; name: string }[]>`
      select form_data -> 'fields' ->> 'tech_signature' as sig, form_data -> 'fields' ->> 'project_name' as name
        from submissions where submission_id = 'sub_0c7d2e91fa35'`;
    expect(doc!.sig).toMatch(/^data:image\/png;base64,iVBOR/);
    expect(doc!.name).toBe('Mussafah Warehouse 7 \u0628\u0631\u062c');

    const jobs = await db.db.sql<
      { job_id: string; status: string; link: string | null; error_message: string | null; excel_url: string | null }[]
    >`
      select j.job_id, j.status, s.submission_id as link, j.error_message, j.excel_url
        from jobs j left join submissions s on s.id = j.submission_id order by j.job_id`;
    const job = Object.fromEntries(jobs.map((j) => [j.job_id, j]));
    expect(job.job_d3f1a2b0c9e8).toMatchObject({
      status: 'failed',
      link: 'sub_19af03c7be58',
      error_message: expect.stringMatching(/cannot identify/),
    });
    expect(job.job_2aa0d7f1e6c4).toMatchObject({ status: 'done', link: 'sub_0c7d2e91fa35', excel_url: expect.stringMatching(/\.xlsx$/) });
    expect(job.job_a0b1c2d3e4f5).toMatchObject({ status: 'done', excel_url: expect.stringMatching(/Emaar\.xlsx$/) });
    expect(job.job_91be0c5d2a33).toMatchObject({ status: 'running', link: 'sub_0c7d2e91fa35' });
    expect(job.job_ffee00112233).toMatchObject({ status: 'started', link: null });
    expect(jobs.filter((j) => j.link === null)).toHaveLength(1);
  });

  it('a re-run changes nothing', async () => {
    const before = await dumpForms(db.db.sql);
    const again = await runCli(['import', '--from', dir, '--to', db.url, '--source-timezone', 'Asia/Dubai']);
    expect(again.stdout).toMatch(/Nothing to change/);
    // Cross-record warnings name what this run wrote: none now.
    expect(again.stdout).not.toMatch(/without a job|not in the database/);
    expect(await dumpForms(db.db.sql)).toEqual(before);
  });

  it('verify with another --source-timezone than import sees the moved times', async () => {
    const result = await runCli(['verify', '--from', dir, '--to', db.url, ...FORMS]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/(created|completed)_at: source \d+, database \d+/);
  });
});

describe('verify', () => {
  let dir: string;
  beforeAll(async () => {
    await resetTables();
    dir = await freshDir('verify');
    await writeFormsCorpus(dir, { bad: false });
    const result = await runCli(['import', '--from', dir, '--to', db.url]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
  });

  it('is clean after an import, then catches a changed form_data field, a deleted job and an extra file row', async () => {
    const clean = await runCli(['verify', '--from', dir, '--to', db.url]);
    expect(clean.code, clean.stdout + clean.stderr).toBe(0);
    expect(clean.stdout).toMatch(
      new RegExp(`submissions\\s+${FORMS_EXPECTED.submissions}\\s+${FORMS_EXPECTED.submissions}\\s+0\\s+0\\s+0\\s+0`),
    );
    expect(clean.stdout).toMatch(new RegExp(`jobs\\s+${FORMS_EXPECTED.jobs}\\s+${FORMS_EXPECTED.jobs}\\s+0\\s+0\\s+0\\s+0`));

    await db.db
      .sql`update submissions set form_data = jsonb_set(form_data, '{fields,project_name}', '"Tampered"') where submission_id = 'sub_5b0e9c27d1a4'`;
    await db.db.sql`delete from jobs where job_id = 'job_91be0c5d2a33'`;
    await db.db.sql`
      insert into uploaded_files (submission_id, field, cloudinary_url, file_type)
      select id, 'photo', 'https://example.com/extra.jpg', 'photo' from submissions where submission_id = 'sub_7d4be1c09a22'`;
    const reportFile = path.join(tmp, 'verify.jsonl');
    const tampered = await runCli(['verify', '--from', dir, '--to', db.url, '--report', reportFile]);
    expect(tampered.code).toBe(1);
    const report = readJsonLines(await fs.readFile(reportFile, 'utf8'));
    const problem = (record: string) => report.find((l) => l.record === record);
    expect(problem('sub_5b0e9c27d1a4')).toMatchObject({
      problem: 'different',
      reason: expect.stringMatching(/form_data differs \(at key "fields"\)/),
    });
    expect(problem('job_91be0c5d2a33')).toMatchObject({ problem: 'missing' });
    expect(problem('sub_7d4be1c09a22')).toMatchObject({ problem: 'different', reason: 'file rows: source 1, database 2' });
    expect(report).toHaveLength(3);
  }, 240_000);

  it('--prune removes a submission whose file is gone (its files and jobs with it); without it, it is reported', async () => {
    await resetTables();
    expect((await runCli(['import', '--from', dir, '--to', db.url])).code).toBe(0);
    await fs.rm(path.join(dir, 'submissions', 'sub_e3b27c05d9a1.json'));
    const reported = await runCli(['import', '--from', dir, '--to', db.url]);
    expect(reported.stdout).toMatch(/1 records imported earlier have no source file any more; run with --prune/);
    const pruned = await runCli(['import', '--from', dir, '--to', db.url, '--prune']);
    expect(pruned.stdout).toMatch(/submissions\s+\d+\s+0\s+0\s+\d+\s+0\s+\d+\s+1/);
    const [row] = await db.db.sql<{ n: number; f: number }[]>`
      select (select count(*) from submissions where submission_id = 'sub_e3b27c05d9a1')::int as n,
             (select count(*) from uploaded_files f where not exists (select 1 from submissions s where s.id = f.submission_id))::int as f`;
    expect(row).toEqual({ n: 0, f: 0 });
    expect((await runCli(['verify', '--from', dir, '--to', db.url])).code).toBe(0);
  }, 240_000);
});

/** Hold every batch transaction open for `ms` before COMMIT (as test/import-kill.test.ts does). */
async function holdCommits(target: TestDatabase, ms: number): Promise<void> {
  await target.db.sql.unsafe(`
    create or replace function test_hold_commit() returns trigger language plpgsql as $$
    begin perform pg_sleep(tg_argv[0]::float8); return null; end $$;
    drop trigger if exists test_hold_commit on import_log;`);
  if (ms > 0) {
    await target.db.sql.unsafe(
      `create trigger test_hold_commit after insert on import_log for each statement execute function test_hold_commit('${ms / 1000}')`,
    );
  }
}

function importAndKill(dir: string, url: string, afterCommits: number, delayMs: number): Promise<NodeJS.Signals | null> {
  return new Promise((resolve, reject) => {
    const { DATABASE_URL: _ignored, ...env } = process.env;
    const child = spawn(process.execPath, [BIN, 'import', '--from', dir, '--to', url, '--batch', '10'], {
      cwd: REPO,
      env: { ...env, LOG_LEVEL: 'debug' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let commits = 0;
    let sent = false;
    child.stderr.on('data', (chunk: Buffer) => {
      commits += chunk.toString().split('"batch committed"').length - 1;
      if (!sent && commits >= afterCommits) {
        sent = true;
        setTimeout(() => child.kill('SIGKILL'), delayMs);
      }
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (_code, signal) => {
      clearTimeout(timer);
      resolve(signal);
    });
  });
}

describe('kill -9 and resume', () => {
  let dir: string;
  let reference: Record<string, string>;
  let killedDb: TestDatabase;
  beforeAll(async () => {
    dir = await freshDir('bulk');
    await writeFormsBulk(dir, 8);
    await resetTables();
    const result = await runCli(['import', '--from', dir, '--to', db.url, '--batch', '10']);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    reference = await dumpForms(db.db.sql);
    killedDb = await createTestDatabase();
  });
  afterAll(async () => {
    await killedDb?.drop();
  });

  it('killed at several moments, a re-run ends with tables identical to an uninterrupted run', async () => {
    await holdCommits(killedDb, 150);
    let killed = 0;
    for (const [after, delay] of [
      [1, 60],
      [3, 0],
      [2, 200],
      [6, 30],
    ] as const) {
      if ((await importAndKill(dir, killedDb.url, after, delay)) === 'SIGKILL') killed++;
      const [orphans] = await killedDb.db.sql<{ n: number }[]>`
        select count(*)::int as n from import_log l
         where l.status = 'inserted' and l.kind = 'submission' and not exists (select 1 from submissions s where s.submission_id = l.record_key)`;
      expect(orphans!.n).toBe(0);
    }
    expect(killed).toBeGreaterThanOrEqual(3);
    await holdCommits(killedDb, 0);
    const final = await runCli(['import', '--from', dir, '--to', killedDb.url, '--batch', '10']);
    expect(final.code, final.stdout + final.stderr).toBe(0);
    expect(await dumpForms(killedDb.db.sql)).toEqual(reference);
    expect((await runCli(['verify', '--from', dir, '--to', killedDb.url])).code).toBe(0);
  }, 240_000);
});

const hasPython = (() => {
  try {
    execFileSync('python3', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe.runIf(hasPython)("files written by the app's own Python code", () => {
  it('import with nothing rejected, and verify clean', async () => {
    await resetTables();
    const dir = await freshDir('python');
    execFileSync('python3', [path.join(REPO, 'test/fixtures/python/forms_writer.py'), dir, '30'], {
      env: { ...process.env, TZ: 'Asia/Dubai' },
    });
    const result = await runCli(['import', '--from', dir, '--to', db.url, '--source-timezone', 'Asia/Dubai']);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/submissions\s+30\s+30\s+0\s+0\s+0/);
    expect(result.stdout).toMatch(/jobs\s+30\s+30\s+0\s+0\s+0/);
    const states = await db.db.sql<
      { status: string; n: number }[]
    >`select status, count(*)::int as n from jobs group by status order by status`;
    expect(states.map((s) => s.status)).toEqual(['done', 'failed', 'running', 'started']);
    const [unlinked] = await db.db.sql<{ n: number }[]>`select count(*)::int as n from jobs where submission_id is null`;
    expect(unlinked!.n).toBe(0);
    // Local `timestamp`s read in the writer's zone land within minutes of now, not four hours off.
    const [skew] = await db.db.sql<{ s: number }[]>`select max(abs(extract(epoch from now() - created_at)))::float8 as s from submissions`;
    expect(skew!.s).toBeLessThan(600);
    const verified = await runCli(['verify', '--from', dir, '--to', db.url, '--source-timezone', 'Asia/Dubai']);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
  }, 240_000);
});
