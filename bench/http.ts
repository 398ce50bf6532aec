/**
 * bench/http — the HTTP service against the limit (issue 5).
 *
 *   npm run bench:http                            # embedded PostgreSQL in a temp dir
 *   TEST_DATABASE_URL=postgres://… npm run bench:http
 *
 * Method: a child process hosts three servers — the real app (buildApp) on
 * PostgreSQL, the real app on JSON files, and a bare Fastify route that
 * returns the same JSON bytes from memory (the limit: HTTP parsing, routing,
 * serialisation, nothing else). The parent drives each with autocannon at
 * BENCH_CONNECTIONS (default 50) connections for BENCH_SECONDS (default 10)
 * after a BENCH_WARMUP (default 2) second warm-up, one target at a time, so
 * servers never compete with each other. Requests rotate over the seeded
 * users (X-User-Id, AUTH_MODE=dev) and their conversations. The apps log at
 * `info` (one line per request, as in production) to /dev/null.
 *
 * It prints figures; it asserts nothing. Target: GET /v1/conversations on
 * PostgreSQL ≥ 0.5× the bare route.
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { pino } from 'pino';
import postgres from 'postgres';
import { loadConfig } from '../src/config.ts';
import { withDatabase } from '../src/db/database.ts';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { buildApp } from '../src/http/app.ts';
import { listen } from '../src/http/server.ts';
import { createLogger } from '../src/log.ts';
import { openStore } from '../src/store/open.ts';
import type { Store } from '../src/store/types.ts';

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);
const USERS = Number(process.env.BENCH_USERS ?? 50);
const CONVERSATIONS_PER_USER = 20;
const MESSAGES_PER_CONVERSATION = 4;

interface Targets {
  ports: { postgres: number; json: number; bare: number; memory: number };
  users: string[];
  /** Conversation ids per user index, for each backend. */
  conversations: { postgres: string[][]; json: string[][] };
  pgVersion: string;
}

// ------------------------------------------------------------ server side (child)

async function seed(store: Store, users: string[]): Promise<string[][]> {
  const ids: string[][] = [];
  for (const user of users) {
    const mine: string[] = [];
    for (let c = 0; c < CONVERSATIONS_PER_USER; c++) {
      const conversation = await store.conversations.create(user, { title: `Conversation ${c} of ${user}` });
      for (let m = 0; m < MESSAGES_PER_CONVERSATION; m++) {
        if (m % 2 === 0) await store.conversations.addUserMessage(user, conversation.id, `Question ${m} about topic ${c}`);
        else
          await store.conversations.addAssistantMessage(user, conversation.id, {
            stage1: [{ model: 'a', response: 'answer a' }],
            stage2: [{ model: 'a', ranking: 'FINAL RANKING: 1. Response A', parsed_ranking: ['Response A'] }],
            stage3: { model: 'chair', response: 'final answer' },
          });
      }
      mine.push(conversation.id);
    }
    ids.push(mine);
  }
  return ids;
}

async function serve(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-bench-http-'));
  await chmod(dir, 0o755);
  const cleanups: Array<() => Promise<void>> = [async () => rm(dir, { recursive: true, force: true })];

  let adminUrl = process.env.TEST_DATABASE_URL;
  if (!adminUrl) {
    const pg = await startEmbeddedPostgres({ clusterDir: path.join(dir, 'cluster'), persistent: false });
    adminUrl = pg.url;
    cleanups.unshift(pg.stop);
  }
  const dbName = `bench_http_${randomBytes(4).toString('hex')}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${dbName}`);
  const pgVersion = String((await admin`show server_version`)[0]?.server_version);
  await admin.end();
  cleanups.unshift(async () => {
    const drop = postgres(adminUrl, { max: 1, onnotice: () => {} });
    await drop.unsafe(`drop database if exists ${dbName} with (force)`);
    await drop.end();
  });
  const dbUrl = withDatabase(adminUrl, dbName);

  const quiet = createLogger({ level: 'warn' });
  const env = { AUTH_MODE: 'dev', TIER_LIMITS: '{"free":{"daily":null,"monthly":null}}', ON_DB_UNAVAILABLE: 'fail' };
  const pgStore = await openStore({ env: { ...env, DATABASE_URL: dbUrl, DATA_DIR: path.join(dir, 'pg-data') }, logger: quiet });
  const jsonStore = await openStore({ env: { ...env, DATA_DIR: path.join(dir, 'json-data') }, logger: quiet });

  const users = Array.from({ length: USERS }, (_, i) => `bench-user-${i}`);
  const conversations = { postgres: await seed(pgStore, users), json: await seed(jsonStore, users) };

  // Request logs on, as in production, written to /dev/null.
  const requestLogger = createLogger({
    level: 'info',
    destination: pino.destination({ dest: '/dev/null', sync: true }) as unknown as NodeJS.WritableStream,
  });
  const config = loadConfig(env);
  const pgApp = await buildApp({ store: pgStore, config, logger: requestLogger, ownsStore: true });
  const jsonApp = await buildApp({ store: jsonStore, config, logger: requestLogger, ownsStore: true });
  // The app itself over a store that answers from memory: separates the HTTP layers' cost from the database's.
  const cachedPage = await pgStore.conversations.list(users[0]!);
  const cachedUsage = await pgStore.usage.get(users[0]!);
  const memoryStore: Store = {
    ...pgStore,
    conversations: {
      ...pgStore.conversations,
      list: async () => cachedPage,
      get: async () => ({ ...cachedPage.items[0]!, userId: users[0]!, messages: [], nextMessagesCursor: null }),
      addUserMessage: async (_u, _id, content) => ({ role: 'user', position: 99, content, createdAt: new Date().toISOString() }),
      sendUserMessage: async (_u, _id, content) => ({
        message: { role: 'user', position: 99, content, createdAt: new Date().toISOString() },
        usage: { ...cachedUsage, allowed: true },
      }),
    },
    usage: { ...pgStore.usage, consume: async () => ({ ...cachedUsage, allowed: true }) },
    close: async () => {},
  };
  const memoryApp = await buildApp({ store: memoryStore, config, logger: requestLogger });
  const memoryServer = await listen(memoryApp, { host: '127.0.0.1', port: 0, logger: quiet, signals: [] });
  cleanups.unshift(memoryServer.close);
  const pgServer = await listen(pgApp, { host: '127.0.0.1', port: 0, logger: quiet, signals: [] });
  const jsonServer = await listen(jsonApp, { host: '127.0.0.1', port: 0, logger: quiet, signals: [] });
  cleanups.unshift(pgServer.close, jsonServer.close);

  // The limit: the same bytes the real routes answer, from memory.
  const listBody = JSON.stringify(await pgStore.conversations.list(users[0]!));
  const sampleUsage = await pgStore.usage.get(users[0]!);
  const messageBody = JSON.stringify({
    message: { role: 'user', position: 99, content: 'hello from autocannon', createdAt: new Date().toISOString() },
    usage: sampleUsage,
  });
  const bare = Fastify({ logger: false });
  bare.get('/bare/conversations', async (_request, reply) => reply.type('application/json; charset=utf-8').send(listBody));
  bare.post('/bare/messages', async (_request, reply) => reply.code(201).type('application/json; charset=utf-8').send(messageBody));
  await bare.listen({ host: '127.0.0.1', port: 0 });
  cleanups.unshift(async () => bare.close());
  const barePort = (bare.server.address() as { port: number }).port;

  const targets: Targets = {
    ports: { postgres: pgServer.port, json: jsonServer.port, bare: barePort, memory: memoryServer.port },
    users,
    conversations,
    pgVersion,
  };
  process.send!(targets);
  process.on('message', async (message: { type: string }) => {
    if (message.type !== 'stop') return;
    for (const cleanup of cleanups) await cleanup().catch(() => {});
    process.exit(0);
  });
}

// ------------------------------------------------------------ load side (parent)

interface AutocannonResult {
  requests: { average: number };
  latency: { p50: number; p99: number; average: number };
  non2xx: number;
  errors: number;
  timeouts: number;
  '2xx': number;
}
type Autocannon = (options: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

interface Run {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  bad: number;
}

async function load(
  name: string,
  port: number,
  method: 'GET' | 'POST',
  pathFor: (i: number) => string,
  users: string[],
  seconds: number,
): Promise<Run> {
  let counter = 0;
  const options = {
    url: `http://127.0.0.1:${port}`,
    connections: CONNECTIONS,
    duration: seconds,
    requests: [
      {
        method,
        ...(method === 'POST' ? { body: JSON.stringify({ content: 'hello from autocannon' }) } : {}),
        setupRequest: (request: Record<string, unknown>) => {
          const i = counter++;
          return {
            ...request,
            path: pathFor(i),
            headers: { 'x-user-id': users[i % users.length]!, ...(method === 'POST' ? { 'content-type': 'application/json' } : {}) },
          };
        },
      },
    ],
  };
  const result = await autocannon(options);
  return {
    name,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    bad: result.non2xx + result.errors + result.timeouts,
  };
}

async function main(): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), ['--serve'], { execArgv: process.execArgv, stdio: 'inherit' });
  const targets = await new Promise<Targets>((resolve, reject) => {
    child.once('message', (message) => resolve(message as Targets));
    child.once('exit', (code) => reject(new Error(`bench server exited early (${code})`)));
  });
  const { users } = targets;
  /** Request i: user i mod USERS, walking through that user's conversations. */
  const messagesPath = (ids: string[][]) => (i: number) =>
    `/v1/conversations/${ids[i % users.length]![Math.floor(i / users.length) % CONVERSATIONS_PER_USER]}/messages`;

  console.log('bench/http — HTTP service vs a bare Fastify route (same JSON from memory)');
  console.log(
    `machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, load ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}; node ${process.version}; PostgreSQL ${targets.pgVersion}`,
  );
  console.log(
    `method: autocannon, ${CONNECTIONS} connections, ${WARMUP}s warm-up + ${SECONDS}s per target, one target at a time; ` +
      `${USERS} users × ${CONVERSATIONS_PER_USER} conversations × ${MESSAGES_PER_CONVERSATION} messages; pool 15; info logs to /dev/null`,
  );

  const runs: Run[] = [];
  const plan: Array<[string, number, 'GET' | 'POST', (i: number) => string]> = [
    ['bare GET (limit)', targets.ports.bare, 'GET', () => '/bare/conversations'],
    ['GET /v1/conversations memory stub', targets.ports.memory, 'GET', () => '/v1/conversations'],
    ['GET /v1/conversations postgres', targets.ports.postgres, 'GET', () => '/v1/conversations'],
    ['GET /v1/conversations json', targets.ports.json, 'GET', () => '/v1/conversations'],
    ['bare POST (limit)', targets.ports.bare, 'POST', () => '/bare/messages'],
    ['POST …/messages memory stub', targets.ports.memory, 'POST', messagesPath(targets.conversations.postgres)],
    ['POST …/messages postgres', targets.ports.postgres, 'POST', messagesPath(targets.conversations.postgres)],
    ['POST …/messages json', targets.ports.json, 'POST', messagesPath(targets.conversations.json)],
  ];
  try {
    for (const [name, port, method, pathFor] of plan) {
      await load(name, port, method, pathFor, users, WARMUP);
      const run = await load(name, port, method, pathFor, users, SECONDS);
      runs.push(run);
      console.log(
        `  ${name.padEnd(34)} ${run.rps.toFixed(0).padStart(7)} req/s   p50 ${run.p50} ms   p99 ${run.p99} ms   non-2xx/errors ${run.bad}`,
      );
    }
  } finally {
    child.send({ type: 'stop' });
  }

  const by = (name: string) => runs.find((r) => r.name === name)!;
  const ratio = (a: string, b: string) => (by(a).rps / by(b).rps).toFixed(2);
  console.log('\nratios (req/s vs the bare route):');
  console.log(
    `  GET  app on an in-memory stub store ${ratio('GET /v1/conversations memory stub', 'bare GET (limit)')}×  (the HTTP layers alone)`,
  );
  console.log(`  POST app on an in-memory stub store ${ratio('POST …/messages memory stub', 'bare POST (limit)')}×`);
  console.log(`  GET  postgres ${ratio('GET /v1/conversations postgres', 'bare GET (limit)')}×   (target ≥ 0.5×)`);
  console.log(`  GET  json     ${ratio('GET /v1/conversations json', 'bare GET (limit)')}×`);
  console.log(`  POST postgres ${ratio('POST …/messages postgres', 'bare POST (limit)')}×`);
  console.log(`  POST json     ${ratio('POST …/messages json', 'bare POST (limit)')}×`);
}

if (process.argv.includes('--serve')) await serve();
else await main();
