/**
 * bench/sync — `pgferry sync --follow` lag under a Python writer (issue 12, "Measure").
 *
 *   npm run bench:sync                      # 50 saves/s for 30 s over a 1,000-conversation tree
 *   npm run bench:sync -- --rate 100 --seconds 60
 *   TEST_DATABASE_URL=postgres://… npm run bench:sync
 *
 * The writer is test/fixtures/python/sync_writer.py: the seed apps' own way of
 * saving (open('w') + json.dump, no lock, no rename), conversations of 1–30 KB
 * and usage files. Sync follows the tree (the engine of `pgferry sync`, in
 * this process so every change's lag is seen). Lag = commit in PostgreSQL −
 * the file's mtime (the app's write). It prints figures; it asserts nothing,
 * except that verify is clean at the end.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_TIER_LIMITS } from '../src/config.ts';
import { Database } from '../src/db/database.ts';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { Sync } from '../src/sync/sync.ts';
import { writeSample } from '../src/transfer/sample.ts';
import { runVerify } from '../src/transfer/verify.ts';
import { BenchDatabases, machine, REPO } from './lib.ts';

const option = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};

function writer(dir: string, seconds: number, rate: number): Promise<{ writes: number; deletes: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'python3',
      [path.join(REPO, 'test/fixtures/python/sync_writer.py'), dir, String(seconds), String(rate), '11', '100'],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`writer exited ${code}`))));
  });
}

const pct = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;

async function main() {
  const rate = Number(option('--rate') ?? 50);
  const seconds = Number(option('--seconds') ?? 30);
  const work = await mkdtemp(path.join(os.tmpdir(), 'pgferry-bench-sync-'));
  await chmod(work, 0o755); // the embedded server's initdb runs as another user
  let adminUrl = process.env.TEST_DATABASE_URL;
  let stopServer = async () => {};
  if (!adminUrl) {
    const server = await startEmbeddedPostgres({ clusterDir: path.join(work, 'cluster'), persistent: false });
    adminUrl = server.url;
    stopServer = server.stop;
  }
  const databases = new BenchDatabases(adminUrl);
  try {
    const about = await machine(databases.sql);
    const url = await databases.fresh('sync');
    const db = new Database({ url, pool: { max: 6, idleSeconds: 5, connectTimeoutSeconds: 10 } });
    const dir = path.join(work, 'data');
    const corpus = await writeSample(dir, { users: 40, conversations: 25, messages: 10, seed: 3 });

    const lags: number[] = [];
    const controller = new AbortController();
    const sync = new Sync({
      root: dir,
      db,
      tierLimits: DEFAULT_TIER_LIMITS,
      follow: true,
      signal: controller.signal,
      onCommit: (change) => lags.push(change.lagMs),
    });
    const backfillStarted = performance.now();
    const running = sync.run();
    // The first pass (the backfill of the existing tree) runs while the writer starts.
    const written = await writer(dir, seconds, rate);
    const writerDone = performance.now();
    let verified = false;
    while (!verified && performance.now() - writerDone < 30_000) {
      verified = (await runVerify({ root: dir, db, readers: 0 })).ok;
      if (!verified) await new Promise((r) => setTimeout(r, 250));
    }
    const caughtUp = performance.now() - writerDone;
    controller.abort();
    const summary = await running;
    await db.close();

    const sorted = [...lags].sort((a, b) => a - b);
    const lines = [
      `bench/sync — ${about}`,
      `tree: ${corpus.files} files (${corpus.conversations} conversations) backfilled by the first pass; then a Python writer, ${rate} saves/s for ${seconds} s`,
      `writer: ${written.writes} saves (${written.deletes} deletions); sync: ${summary.imported} loads, ${summary.unchanged} unchanged, ${summary.deleted} deletions, ${summary.errors} problems`,
      `lag (app's write -> committed in PostgreSQL), ${sorted.length} changes: p50 ${Math.round(pct(sorted, 0.5))} ms, p99 ${Math.round(pct(sorted, 0.99))} ms, max ${Math.round(sorted.at(-1) ?? Number.NaN)} ms`,
      `verify after the writer stopped: ${verified ? 'clean' : 'NOT clean'} ${(caughtUp / 1000).toFixed(1)} s later (run: ${((performance.now() - backfillStarted) / 1000).toFixed(1)} s)`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    if (!verified) process.exitCode = 1;
  } finally {
    await databases.close();
    await stopServer();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
