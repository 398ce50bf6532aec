/**
 * bench/modes — what the cutover modes cost a write, and how fast the journal
 * replays (issue 12, "Measure").
 *
 *   npm run bench:modes                          # embedded PostgreSQL in a temp dir
 *   TEST_DATABASE_URL=postgres://… npm run bench:modes
 *
 * Knobs (environment): BENCH_WRITES (writes timed per mode, default 1000),
 * BENCH_JOURNAL (records journaled for the replay, default 5000).
 *
 * Write latency: one caller, sequential `sendUserMessage` (a message append
 * plus a quota count: two record files in JSON) in `json`, `dual` and
 * `postgres`. Replay: BENCH_JOURNAL conversations written while PostgreSQL is
 * unreachable (dual, journaled), then the time to replay the journal.
 * It prints figures; it asserts nothing.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { type Config, DEFAULT_TIER_LIMITS, loadConfig } from '../src/config.ts';
import { Database, withDatabase } from '../src/db/database.ts';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { createLogger } from '../src/log.ts';
import { Migrator } from '../src/schema/migrator.ts';
import { createJsonStore } from '../src/store/json/index.ts';
import { createModesStore, type ModesStore } from '../src/store/modes/index.ts';
import { createPostgresStore } from '../src/store/postgres/index.ts';
import type { Store } from '../src/store/types.ts';

const WRITES = Number(process.env.BENCH_WRITES ?? 1000);
const JOURNAL = Number(process.env.BENCH_JOURNAL ?? 5000);
const tierLimits = { ...DEFAULT_TIER_LIMITS, free: { daily: null, monthly: null } };
const silent = createLogger({ level: 'silent' });

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const fmt = (ms: number) => (ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));

async function latency(store: Store, label: string): Promise<void> {
  const user = `bench-${label}`;
  const conversations = await Promise.all(Array.from({ length: 20 }, () => store.conversations.create(user, { title: 'bench' })));
  const samples: number[] = [];
  for (let i = 0; i < WRITES; i++) {
    const c = conversations[i % conversations.length]!;
    const started = performance.now();
    await store.conversations.sendUserMessage(user, c.id, `message ${i}`);
    samples.push(performance.now() - started);
  }
  samples.sort((a, b) => a - b);
  console.log(
    `${label.padEnd(10)} p50 ${fmt(percentile(samples, 50)).padStart(7)} ms   p99 ${fmt(percentile(samples, 99)).padStart(7)} ms`,
  );
}

async function freshDatabase(adminUrl: string): Promise<{ url: string; db: Database }> {
  const name = `bench_modes_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  const url = withDatabase(adminUrl, name);
  const db = new Database({ url, pool: { max: 10, idleSeconds: 5, connectTimeoutSeconds: 5 } });
  await new Migrator(db.sql, { logger: silent }).up();
  return { url, db };
}

async function modesStore(config: Config, db: Database): Promise<ModesStore> {
  return createModesStore({
    config,
    json: createJsonStore({ dataDir: config.dataDir, tierLimits }),
    postgres: createPostgresStore({ db, tierLimits }),
    db,
    logger: silent,
  });
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-bench-modes-'));
  await chmod(dir, 0o755); // PostgreSQL runs as `postgres` when run as root
  let stop = async () => {};
  let adminUrl = process.env.TEST_DATABASE_URL;
  if (!adminUrl) {
    const pg = await startEmbeddedPostgres({ clusterDir: path.join(dir, 'cluster'), persistent: false });
    adminUrl = pg.url;
    stop = pg.stop;
  }
  try {
    console.log(`write latency: ${WRITES} sequential sendUserMessage calls, one caller`);
    const json = createJsonStore({ dataDir: path.join(dir, 'json'), tierLimits });
    await latency(json, 'json');
    await json.close();

    const forDual = await freshDatabase(adminUrl);
    const dualConfig = loadConfig({ DATA_DIR: path.join(dir, 'dual'), DATABASE_URL: forDual.url, STORAGE_MODE: 'dual' }, { tierLimits });
    const dual = await modesStore(dualConfig, forDual.db);
    await latency(dual, 'dual');
    await dual.close();

    const forPostgres = await freshDatabase(adminUrl);
    const pgStore = createPostgresStore({ db: forPostgres.db, tierLimits });
    await latency(pgStore, 'postgres');
    await pgStore.close();

    // Journal replay: journal entries written while PostgreSQL is unreachable, replayed into a live one.
    const replayDir = path.join(dir, 'replay');
    const down = new Database({
      url: 'postgres://nobody:x@127.0.0.1:9/none',
      retries: 1,
      pool: { max: 2, idleSeconds: 1, connectTimeoutSeconds: 1 },
    });
    const offline = await modesStore(
      loadConfig({ DATA_DIR: replayDir, DATABASE_URL: 'postgres://nobody@127.0.0.1:9/none', STORAGE_MODE: 'dual' }, { tierLimits }),
      down,
    );
    const journalStarted = performance.now();
    for (let i = 0; i < JOURNAL; i++) {
      const c = await offline.conversations.create(`replay-${i % 100}`, { title: `r${i}` });
      await offline.conversations.addUserMessage(`replay-${i % 100}`, c.id, `hello ${i}`);
    }
    const journalMs = performance.now() - journalStarted;
    const depth = await offline.cutover.mirror.journal.depth();
    await offline.close();
    await down.close();

    const target = await freshDatabase(adminUrl);
    const replayStarted = performance.now();
    const online = await modesStore(
      loadConfig({ DATA_DIR: replayDir, DATABASE_URL: target.url, STORAGE_MODE: 'dual' }, { tierLimits }),
      target.db,
    );
    const replayMs = performance.now() - replayStarted;
    const left = await online.cutover.mirror.journal.depth();
    await online.close();
    const [row] = await target.db.sql<{ n: number }[]>`select count(*)::int as n from conversations`;
    console.log(
      `journal:   ${depth} entries (${JOURNAL} conversations, 2 writes each) written in ${(journalMs / 1000).toFixed(1)} s ` +
        `(${Math.round((2 * JOURNAL) / (journalMs / 1000))} journaled writes/s)`,
    );
    console.log(
      `replay:    ${depth} entries → ${row?.n} conversations in ${(replayMs / 1000).toFixed(1)} s ` +
        `(${Math.round(depth / (replayMs / 1000))} entries/s, ${Math.round((row?.n ?? 0) / (replayMs / 1000))} records/s); ${left} left`,
    );
    await forDual.db.close();
    await forPostgres.db.close();
    await target.db.close();
  } finally {
    await stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
