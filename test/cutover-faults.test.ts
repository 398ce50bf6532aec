import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TIER_LIMITS } from '../src/config.ts';
import { Database, withDatabase } from '../src/db/database.ts';
import { type EmbeddedServer, freePort, startEmbeddedPostgres } from '../src/db/embedded.ts';
import { createLogger } from '../src/log.ts';
import { Migrator } from '../src/schema/migrator.ts';
import { createJsonStore } from '../src/store/json/index.ts';
import { Journal, type ModesStore } from '../src/store/modes/index.ts';
import { openStore } from '../src/store/open.ts';
import { runImport } from '../src/transfer/import.ts';
import { allKinds } from '../src/transfer/kinds/index.ts';
import { ProblemReport } from '../src/transfer/report.ts';
import { resolveSourceRoot } from '../src/transfer/source.ts';
import { runVerify } from '../src/transfer/verify.ts';
import { createTestDatabase } from './helpers/db.ts';

/**
 * The cutover's fault tests (issue 12, item 8; item 4):
 * - dual mode with PostgreSQL stopped under a write load: no caller sees an
 *   error; the journal drains once it is back; verify is clean;
 * - an app process killed with SIGKILL mid-journal: the next start replays
 *   it; nothing acknowledged is lost, nothing is applied twice;
 * - an import racing a stream of dual writes on the same records: verify is
 *   clean with no second pass (writes apply only if newer).
 *
 * The outage lasts PGFERRY_OUTAGE_S seconds (default 10, the issue says 30):
 * what is tested is the switch to the journal and back, which a longer outage
 * only repeats; the two cores of CI are shared. PGFERRY_OUTAGE_S=30 runs the figure.
 */

const OUTAGE_S = Number(process.env.PGFERRY_OUTAGE_S ?? 10);
const UNLIMITED = '{"free":{"daily":null,"monthly":null}}';
const silent = createLogger({ level: 'silent' });
const REPO = path.resolve(import.meta.dirname, '..');

async function verifyClean(root: string, url: string) {
  const db = new Database({ url, pool: { max: 2, idleSeconds: 5, connectTimeoutSeconds: 10 } });
  try {
    const summary = await runVerify({ root, db, kinds: ['conversations', 'usage'], readers: 0 });
    return summary;
  } finally {
    await db.close();
  }
}

async function waitFor(condition: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('cutover on a PostgreSQL that stops', () => {
  let dir = '';
  let clusterDir = '';
  let port = 0;
  let pg: EmbeddedServer | undefined;
  let adminUrl = '';
  const startDatabase = async () => {
    pg = await startEmbeddedPostgres({ clusterDir, port, persistent: true });
    adminUrl = pg.url;
  };
  /** A migrated database of the test's own on the server that stops (verify compares the whole database). */
  const databaseFor = async (name: string): Promise<string> => {
    const admin = new Database({ url: adminUrl });
    await admin.sql.unsafe(`create database ${name}`);
    await admin.close();
    const url = withDatabase(adminUrl, name);
    const db = new Database({ url });
    await new Migrator(db.sql, { logger: silent }).up();
    await db.close();
    return url;
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-cutover-'));
    await chmod(dir, 0o755); // PostgreSQL runs as `postgres` when tests run as root
    clusterDir = path.join(dir, 'cluster');
    port = await freePort();
    await startDatabase();
  }, 180_000);
  afterAll(async () => {
    await pg?.stop();
    await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it(`dual: ${OUTAGE_S} s without PostgreSQL under a write load — no caller error, the journal drains, verify is clean`, async () => {
    const dataDir = path.join(dir, 'outage-data');
    const url = await databaseFor('outage');
    const app = startWriter({ databaseUrl: url, dataDir, userId: 'outage', pauseMs: 10 });
    try {
      await waitFor(() => app.acked.length >= 20, 60_000, 'writes with PostgreSQL up');
      await pg!.stop();
      const before = app.acked.length;
      await sleep(OUTAGE_S * 1000);
      const duringOutage = app.acked.length - before;
      await startDatabase();
      await waitFor(async () => (await new Journal(dataDir).depth()) === 0, 60_000, 'the journal to drain');
      const after = app.acked.length;
      await waitFor(() => app.acked.length >= after + 20, 60_000, 'writes after the outage');
      await app.stop();
      expect(app.errors).toEqual([]);
      expect(duringOutage).toBeGreaterThan(10);
    } finally {
      killNow(app.child);
    }
    expect(await new Journal(dataDir).depth()).toBe(0);
    const summary = await verifyClean(dataDir, url);
    expect(summary.kinds.conversations!.source).toBe(new Set(app.acked.map((a) => a.id)).size);
    expect(summary.ok, JSON.stringify(summary.kinds)).toBe(true);
  }, 240_000);

  it('kill -9 of a dual-mode app mid-journal: the next start replays it; nothing lost, nothing applied twice', async () => {
    const dataDir = path.join(dir, 'kill-data');
    const url = await databaseFor('killed');
    const app = startWriter({ databaseUrl: url, dataDir, userId: 'killed' });
    const acked = app.acked;
    try {
      await waitFor(() => acked.length >= 20, 60_000, 'writes with PostgreSQL up');
      await pg!.stop();
      const before = acked.length;
      await waitFor(() => acked.length >= before + 40, 60_000, 'writes while PostgreSQL is down');
      killNow(app.child);
    } finally {
      killNow(app.child);
    }
    expect(app.errors).toEqual([]);
    await startDatabase();
    const pendingAtRestart = await new Journal(dataDir).depth();
    expect(pendingAtRestart).toBeGreaterThanOrEqual(40 * 3); // three writes a round

    const store = (await openStore({
      env: { DATABASE_URL: url, DATA_DIR: dataDir, STORAGE_MODE: 'dual', TIER_LIMITS: UNLIMITED },
      logger: silent,
    })) as ModesStore;
    expect(store.cutover.mirror.behind).toBe(false); // replayed on open
    expect(await store.cutover.mirror.journal.depth()).toBe(0);

    const db = new Database({ url });
    try {
      const rows = await db.sql<{ id: string; content: string }[]>`
        select c.id, m.content from conversations c join messages m on m.conversation_id = c.id where c.user_id = 'killed'`;
      const inPostgres = new Set(rows.map((r) => `${r.id} ${r.content}`));
      for (const ack of acked) expect(inPostgres.has(`${ack.id} ${ack.content}`), ack.id).toBe(true);
      const versions = await db.sql`select id, xmin::text as x from conversations where user_id = 'killed' order by id`;

      // A crash after the apply, before the journal's cursor moved: the same entries again change nothing.
      const journal = new Journal(dataDir);
      await journal.append(acked.map((a) => ({ kind: 'conversations', rel: `conversations/killed/${a.id}.json` })));
      await journal.close();
      await store.cutover.mirror.drain();
      expect(await journal.depth()).toBe(0);
      expect(await db.sql`select id, xmin::text as x from conversations where user_id = 'killed' order by id`).toEqual(versions);
      const [count] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from messages m join conversations c on c.id = m.conversation_id where c.user_id = 'killed'`;
      expect(count!.n).toBe(rows.length);
    } finally {
      await db.close();
      await store.close();
    }
    const summary = await verifyClean(dataDir, url);
    expect(summary.ok, JSON.stringify(summary.kinds)).toBe(true);
  }, 180_000);
});

interface Writer {
  child: ChildProcess;
  acked: Array<{ id: string; content: string }>;
  errors: string[];
  /** Ask it to finish its round and close the store; resolves when it has. */
  stop(): Promise<void>;
}

/** test/fixtures/dual-writer.ts in a process of its own: the app. */
function startWriter(task: { databaseUrl: string; dataDir: string; userId: string; pauseMs?: number }): Writer {
  const child = spawn(process.execPath, [path.join(REPO, 'test/fixtures/dual-writer.ts'), JSON.stringify(task)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const writer: Writer = {
    child,
    acked: [],
    errors: [],
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`the writer exited early (${child.exitCode ?? child.signalCode})`);
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.stdin!.write('stop\n');
      await exited;
    },
  };
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const [word, id, ...rest] = line.split(' ');
    if (word === 'ack') writer.acked.push({ id: id!, content: rest.join(' ') });
    else if (word === 'error') writer.errors.push(line);
  });
  return writer;
}

function killNow(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

describe('import during dual writes', () => {
  it('an import and a stream of dual writes on the same records end with verify clean, no second pass', async () => {
    const testDb = await createTestDatabase();
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-race-'));
    let store: ModesStore | undefined;
    try {
      // Records the app already has before the cutover starts.
      const tierLimits = { ...DEFAULT_TIER_LIMITS, free: { daily: null, monthly: null } };
      const seed = createJsonStore({ dataDir, tierLimits });
      const ids: Array<{ user: string; id: string }> = [];
      for (let i = 0; i < 600; i++) {
        const user = `u${i % 10}`;
        const c = await seed.conversations.create(user, { title: `c${i}` });
        await seed.conversations.addUserMessage(user, c.id, `first ${i}`);
        ids.push({ user, id: c.id });
      }
      await seed.close();

      store = (await openStore({
        env: { DATABASE_URL: testDb.url, DATA_DIR: dataDir, STORAGE_MODE: 'dual', TIER_LIMITS: UNLIMITED },
        logger: silent,
      })) as ModesStore;
      const app = store;
      let importing = true;
      let writes = 0;
      const stream = async () => {
        while (importing) {
          const { user, id } = ids[Math.floor(Math.random() * ids.length)]!;
          await app.conversations.sendUserMessage(user, id, `during import ${writes++}`);
        }
      };
      const streams = [stream(), stream(), stream()];
      const root = await resolveSourceRoot(dataDir, allKinds());
      // One pass, small batches: the import reads files well before it commits them.
      const report = new ProblemReport();
      const imported = await runImport({
        root,
        db: testDb.db,
        tierLimits,
        batchSize: 5,
        jobs: 2,
        report,
        logger: createLogger({ level: 'warn' }),
      });
      importing = false;
      await Promise.all(streams);
      expect(imported.kinds.conversations!.rejected, JSON.stringify(report.first)).toBe(0);
      await app.close();
      store = undefined;
      expect(writes).toBeGreaterThan(10);
      const summary = await verifyClean(dataDir, testDb.url);
      expect(summary.kinds.conversations!.source).toBe(600);
      expect(summary.ok, JSON.stringify(summary.kinds)).toBe(true);
    } finally {
      await store?.close();
      await testDb.drop();
      await rm(dataDir, { recursive: true, force: true, maxRetries: 3 });
    }
  }, 180_000);
});
