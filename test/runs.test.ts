import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listRuns, runProblems, startRun } from '../src/runs/record.ts';
import { writeSample } from '../src/transfer/sample.ts';
import { runCli, writeQuirksCorpus } from './fixtures/import-corpus.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startS3Server } from './helpers/s3-server.ts';

/**
 * Run history (issue 13): import and verify each leave a `runs` row with
 * their counts, status, report path and first problems; `pgferry runs` lists
 * them. Recording never breaks a run.
 */

let tmp: string;
let dir: string;
let db: TestDatabase;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-runs-'));
  dir = path.join(tmp, 'data');
  await writeSample(dir, { users: 2, conversations: 3, messages: 4, seed: 5 });
  await writeQuirksCorpus(dir);
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.drop();
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('run history', () => {
  it('records an import with its counts, rejects and report path, and a verify after it', async () => {
    const report = path.join(tmp, 'import.jsonl');
    const imported = await runCli(['import', '--from', dir, '--to', db.url, '--default-user', 'owner_1', '--report', report]);
    const verified = await runCli(['verify', '--from', dir, '--to', db.url, '--default-user', 'owner_1']);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);

    const [verifyRun, importRun] = await listRuns(db.db.sql);
    expect(importRun).toMatchObject({ command: 'import', source: dir, reportPath: report, exitCode: imported.code, stale: false });
    expect(importRun!.status).toBe(imported.code === 0 ? 'ok' : 'failed');
    expect(importRun!.counts.conversations).toMatchObject({ read: expect.any(Number), inserted: expect.any(Number) });
    expect(importRun!.finishedAt).not.toBeNull();
    expect(importRun!.progress.done).toBe(importRun!.progress.total);
    const problems = await runProblems(db.db.sql, importRun!.id);
    expect(problems.length).toBe(Math.min(20, importRun!.problems + importRun!.warnings));
    if (problems.length > 0) expect(problems[0]).toMatchObject({ kind: expect.any(String), reason: expect.any(String) });

    expect(verifyRun).toMatchObject({ command: 'verify', status: 'ok', exitCode: 0, problems: 0 });
    expect(verifyRun!.counts.conversations!.source).toBe(verifyRun!.counts.conversations!.matched);
  });

  it('`pgferry runs` lists the runs; `pgferry runs <id> --json` shows one with its problems', async () => {
    const listed = await runCli(['runs', '--database-url', db.url]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/id\s+command\s+started \(UTC\)/);
    expect(listed.stdout).toMatch(/verify .* ok /);
    const [latest] = await listRuns(db.db.sql, { command: 'import' });
    const one = await runCli(['runs', String(latest!.id), '--json', '--database-url', db.url]);
    expect(one.code, one.stderr).toBe(0);
    const parsed = JSON.parse(one.stdout) as { id: number; problemLines: unknown[] };
    expect(parsed.id).toBe(latest!.id);
    expect(parsed.problemLines.length).toBe(Math.min(20, latest!.problems + latest!.warnings));
    const missing = await runCli(['runs', '999999', '--database-url', db.url]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no run 999999/);
    const bad = await runCli(['runs', 'abc', '--database-url', db.url]);
    expect(bad.code).toBe(2);
  });

  it('`pgferry status` prints the sections on one screen, or JSON', async () => {
    const status = await runCli(['status', '--database-url', db.url]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/== Configuration\n {3}backend {3}postgres/);
    expect(status.stdout).toMatch(/schema {4}version \d+ of \d+ \(up to date\)/);
    expect(status.stdout).toMatch(/== Last runs\n {3}#\d+ verify {2}ok/);
    expect(status.stdout).toMatch(/next step: /);
    const json = await runCli(['status', '--json', '--database-url', db.url]);
    const parsed = JSON.parse(json.stdout) as { runs: { runs: unknown[] }; configuration: { database: { reachable: boolean } } };
    expect(parsed.configuration.database.reachable).toBe(true);
    expect(parsed.runs.runs.length).toBeGreaterThan(0);
    const down = await runCli(['status', '--database-url', 'postgres://nobody@127.0.0.1:1/none'], { env: { DB_CONNECT_TIMEOUT_S: '1' } });
    expect(down.code).toBe(1);
    expect(down.stdout).toContain('== Configuration');
  });

  it('--log-format human writes log lines for a person; JSON otherwise (not a terminal)', async () => {
    const human = await runCli(['verify', '--from', dir, '--to', db.url, '--default-user', 'owner_1', '--log-format', 'human'], {
      env: { LOG_LEVEL: 'info' },
    });
    const json = await runCli(['verify', '--from', dir, '--to', db.url, '--default-user', 'owner_1'], { env: { LOG_LEVEL: 'info' } });
    const humanLines = human.stderr.split('\n').filter(Boolean);
    expect(humanLines.length).toBeGreaterThan(0);
    for (const line of humanLines) expect(line).toMatch(/^\d\d:\d\d:\d\d (INFO|WARN) /);
    const jsonLines = json.stderr.split('\n').filter(Boolean);
    expect(jsonLines.length).toBeGreaterThan(0);
    for (const line of jsonLines) expect(() => JSON.parse(line)).not.toThrow();
  });

  it('records a failed run with its redacted error, and never the password of a URL', async () => {
    const run = await startRun(db.db, { command: 'sync', source: 'postgres://app:hunter2@db.example/app' });
    run.progress(1, 4);
    await run.fail(new Error('lost postgres://app:hunter2@db.example/app midway'));
    const [row] = await listRuns(db.db.sql, { command: 'sync' });
    expect(row).toMatchObject({ status: 'failed', exitCode: 1 });
    expect(JSON.stringify(row)).not.toContain('hunter2');
    expect(row!.error).toContain('app:***@db.example');
  });

  it('skips recording, without failing, on a database that has no runs table', async () => {
    const empty = await createTestDatabase({ empty: true });
    try {
      const run = await startRun(empty.db, { command: 'verify', source: dir });
      expect(run.id).toBeUndefined();
      await run.finish({ exitCode: 0 });
      expect(await listRuns(empty.db.sql)).toEqual([]);
    } finally {
      await empty.drop();
    }
  });

  it('records a sync (counts and lag samples), a files move and reconcile, and an archive; `pgferry runs` lists them', async () => {
    const synced = await runCli(['sync', '--from', dir, '--to', db.url, '--default-user', 'owner_1']);
    const [sync] = await listRuns(db.db.sql, { command: 'sync' });
    expect(sync).toMatchObject({ command: 'sync', source: dir, exitCode: synced.code, stale: false });
    expect(sync!.finishedAt).not.toBeNull();
    expect(sync!.counts.sync).toMatchObject({ imported: expect.any(Number), unchanged: expect.any(Number), deleted: 0 });
    // The final sync_state report is the run's progress: counts and at least one lag sample for the chart.
    expect(sync!.progress).toMatchObject({ pending: 0, lagSamples: expect.any(Array) });
    expect((sync!.progress.lagSamples as unknown[]).length).toBeGreaterThan(0);

    // files move: one local object to S3 (s3rver), then a reconcile that finds a row whose object is missing.
    const dataDir = path.join(tmp, 'app');
    const bytes = 'uploaded bytes';
    await fs.mkdir(path.join(dataDir, 'files', 'uploads'), { recursive: true });
    await fs.writeFile(path.join(dataDir, 'files', 'uploads', 'a'), bytes);
    const sha = createHash('sha256').update(bytes).digest('hex');
    await db.db.sql`insert into uploads (id, user_id, filename, storage, file_key, file_size, sha256)
                    values (${randomUUID()}, 'alice', 'a.pdf', 'local', 'uploads/a', ${bytes.length}, ${sha}),
                           (${randomUUID()}, 'alice', 'b.pdf', 'local', 'uploads/gone', 5, ${sha})`;
    const s3 = await startS3Server();
    try {
      const { settings } = s3;
      const env: Record<string, string> = {
        DATA_DIR: dataDir,
        S3_BUCKET_NAME: settings.bucket ?? '',
        AWS_REGION: settings.region ?? '',
        AWS_ACCESS_KEY_ID: settings.accessKeyId ?? '',
        AWS_SECRET_ACCESS_KEY: settings.secretAccessKey ?? '',
        S3_ENDPOINT: settings.endpoint ?? '',
      };
      const moved = await runCli(['files', 'move', '--to', 's3', '--db', db.url, '--attempts', '1'], { env });
      expect(moved.code).toBe(1); // uploads/gone has no object: it fails, the other moves
      const [move] = await listRuns(db.db.sql, { command: 'files-move' });
      expect(move).toMatchObject({ status: 'failed', exitCode: 1, problems: 1, source: 'local → s3' });
      expect(move!.counts.objects).toMatchObject({ selected: 2, migrated: 1, failed: 1 });
      expect(await runProblems(db.db.sql, move!.id)).toEqual([
        expect.objectContaining({ kind: 'object', file: 'uploads/gone', severity: 'error' }),
      ]);
      const reconciled = await runCli(['files', 'reconcile', '--store', 's3', '--db', db.url], { env });
      const [reconcile] = await listRuns(db.db.sql, { command: 'files-reconcile' });
      expect(reconcile).toMatchObject({ exitCode: reconciled.code, source: 's3' });
      expect(reconcile!.counts.objects).toMatchObject({ objects: expect.any(Number), missing: expect.any(Number) });
    } finally {
      await s3.close();
    }

    const archived = await runCli(['archive', '--from', dir, '--to', path.join(tmp, 'archive.tar.gz')], { env: { DATABASE_URL: db.url } });
    expect(archived.code, archived.stderr).toBe(0);
    const [archive] = await listRuns(db.db.sql, { command: 'archive' });
    expect(archive).toMatchObject({ status: 'ok', exitCode: 0, source: dir });
    expect(archive!.counts.archive!.files).toBeGreaterThan(0);

    const listed = await runCli(['runs', '--database-url', db.url]);
    expect(listed.code, listed.stderr).toBe(0);
    for (const command of ['sync', 'files-move', 'files-reconcile', 'archive']) expect(listed.stdout).toContain(command);
  });

  it('`pgferry status` shows a sync following, and a sync whose row stopped moving as stale', async () => {
    await db.db.sql`insert into sync_state (source_dir, following, lag_ms, pending, oldest_pending_ms, last_event_at, updated_at)
                    values ('/srv/live', true, 420, 0, 0, now(), now()),
                           ('/srv/dead', true, 900, 3, 12000, now() - interval '10 minutes', now() - interval '10 minutes')`;
    const status = await runCli(['status', '--database-url', db.url]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/sync \/srv\/live: following, lag 0\.4 s, 0 pending/);
    expect(status.stdout).toMatch(/sync \/srv\/dead: stale, lag 12\.0 s, 3 pending/);
  });
});
