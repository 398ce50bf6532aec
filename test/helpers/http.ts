import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll } from 'vitest';
import { type Config, type Env, loadConfig } from '../../src/config.ts';
import { type EmbeddedServer, freePort, startEmbeddedPostgres } from '../../src/db/embedded.ts';
import { type App, buildApp } from '../../src/http/app.ts';
import { listen } from '../../src/http/server.ts';
import { createLogger, type Logger } from '../../src/log.ts';
import { openStore } from '../../src/store/open.ts';
import type { Store } from '../../src/store/types.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';

/**
 * HTTP test plumbing: a storage location per backend (a mkdtemp DATA_DIR, or
 * a fresh PostgreSQL database), stores opened through openStore exactly as
 * `pgferry serve` opens them, and apps listening on 127.0.0.1:0.
 */

export const BACKENDS = ['json', 'postgres'] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface StorageFixture {
  backend: BackendName;
  dataDir: string;
  databaseUrl: string | undefined;
  /** A new Store on the same data (a "restart" opens another one). */
  open(env?: Env): Promise<Store>;
  cleanup(): Promise<void>;
}

export async function createStorage(backend: BackendName): Promise<StorageFixture> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-http-'));
  let testDb: TestDatabase | undefined;
  if (backend === 'postgres') testDb = await createTestDatabase({ prefix: 'http' });
  const databaseUrl = testDb?.url;
  return {
    backend,
    dataDir,
    databaseUrl,
    open: (env: Env = {}) =>
      openStore({
        env: {
          DATA_DIR: dataDir,
          ON_DB_UNAVAILABLE: 'fail',
          ...(databaseUrl ? { DATABASE_URL: databaseUrl, STORAGE_MODE: 'postgres' } : {}),
          ...env,
        },
        logger: createLogger({ level: 'silent' }),
        migrate: false,
      }),
    cleanup: async () => {
      await testDb?.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A Config from an explicit environment (never process.env), dev auth unless told otherwise. */
export function testConfig(env: Env = {}, overrides: Partial<Config> = {}): Config {
  return loadConfig({ AUTH_MODE: 'dev', NODE_ENV: 'test', ...env }, overrides);
}

/** Log lines written by a logger, for assertions on what reaches the log. */
export class LogCapture {
  readonly lines: string[] = [];
  readonly logger: Logger;

  constructor(level = 'debug') {
    const lines = this.lines;
    const destination = new Writable({
      write(chunk, _encoding, callback) {
        lines.push(...String(chunk).split('\n').filter(Boolean));
        callback();
      },
    });
    this.logger = createLogger({ level, destination });
  }

  get text(): string {
    return this.lines.join('\n');
  }

  records(): Array<Record<string, unknown>> {
    return this.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  }
}

export interface TestServer {
  app: App;
  url: string;
  close(): Promise<void>;
}

export async function startServer(options: { store: Store; config: Config; logger?: Logger; ownsStore?: boolean }): Promise<TestServer> {
  const logger = options.logger ?? createLogger({ level: 'silent' });
  const app = await buildApp({ ...options, logger });
  const server = await listen(app, { host: '127.0.0.1', port: 0, logger, signals: [], shutdownTimeoutMs: 5000 });
  return { app, url: server.url, close: server.close };
}

export interface Answer {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: answers are asserted field by field
  body: any;
  text: string;
}

/** fetch + JSON decoding; `body` may be an object (sent as JSON) or a raw string. */
export async function call(
  baseUrl: string,
  method: string,
  url: string,
  options: { user?: string; token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.user !== undefined) headers['x-user-id'] = options.user;
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(`${baseUrl}${url}`, { method, headers, body });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: response.status, headers: response.headers, body: parsed, text };
}

/** The error body every failure has. */
export function isErrorBody(body: unknown): boolean {
  const error = (body as { error?: Record<string, unknown> } | undefined)?.error;
  return (
    typeof error === 'object' &&
    error !== null &&
    typeof error.code === 'string' &&
    typeof error.message === 'string' &&
    typeof error.requestId === 'string'
  );
}

/** The storage, store and listening server of one describe block. */
export interface Suite {
  storage: StorageFixture;
  store: Store;
  server: TestServer;
}

/**
 * Open a storage and a store on `backend` and start a server on it before the
 * block's tests (default: dev auth, the storage's DATA_DIR); close all three after.
 */
export function serverForSuite(
  backend: BackendName,
  start: (store: Store, storage: StorageFixture) => Promise<TestServer> = (store, storage) =>
    startServer({ store, config: testConfig({ DATA_DIR: storage.dataDir }) }),
): Suite {
  const suite = {} as Suite;
  beforeAll(async () => {
    suite.storage = await createStorage(backend);
    suite.store = await suite.storage.open();
    suite.server = await start(suite.store, suite.storage);
  });
  afterAll(async () => {
    await suite.server?.close();
    await suite.store?.close();
    await suite.storage?.cleanup();
  });
  return suite;
}

/** A service on a PostgreSQL of its own that a test may stop and start again (the shared test server must not be stopped). */
export interface OutageSuite {
  store: Store;
  server: TestServer;
  stopDatabase(): Promise<void>;
  /** Start it again on the same port, with the data from before (a persistent cluster). */
  startDatabase(): Promise<void>;
}

/**
 * Before the block's tests: a throwaway embedded PostgreSQL, a store that
 * fails fast while it is down (503, never queued requests), and a server on
 * that store. After them: all closed and removed.
 */
export function serverOnOwnPostgres(prefix: string): OutageSuite {
  let dir = '';
  let clusterDir = '';
  let port = 0;
  let pg: EmbeddedServer | undefined;
  const suite = {
    stopDatabase: async () => {
      await pg?.stop();
    },
    startDatabase: async () => {
      pg = await startEmbeddedPostgres({ clusterDir, port, persistent: true });
    },
  } as OutageSuite;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), `${prefix}-`));
    // When tests run as root, PostgreSQL runs as the `postgres` user and must traverse this directory.
    await chmod(dir, 0o755);
    clusterDir = path.join(dir, 'cluster');
    port = await freePort();
    await suite.startDatabase();
    suite.store = await openStore({
      env: { DATABASE_URL: pg!.url, DATA_DIR: dir, ON_DB_UNAVAILABLE: 'fail', DB_CONNECT_TIMEOUT_S: '2' },
      logger: createLogger({ level: 'silent' }),
    });
    suite.server = await startServer({ store: suite.store, config: testConfig() });
  }, 180_000);
  afterAll(async () => {
    await suite.server?.close();
    await suite.store?.close();
    await pg?.stop();
    await rm(dir, { recursive: true, force: true });
  }, 60_000);
  return suite;
}
