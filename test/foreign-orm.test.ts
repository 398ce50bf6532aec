import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TIER_LIMITS } from '../src/config.ts';
import type { Message } from '../src/domain/conversations.ts';
import { toJsonb } from '../src/domain/json-values.ts';
import { writeJsonFileAtomic } from '../src/store/json/files.ts';
import { createPostgresStore } from '../src/store/postgres/index.ts';
import type { Store } from '../src/store/types.ts';
import { runCli, writeQuirksCorpus } from './fixtures/import-corpus.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * A foreign ORM on pgferry's tables (DESIGN section 4, issue 8 item 5): seed
 * 001's own SQLAlchemy models (test/fixtures/python), run by Debian's python3,
 * read what `pgferry import` loaded and write messages the app's way (no
 * position). pgferry's store then reads those rows at the right positions,
 * and `pgferry verify` passes after the changed records are exported back to
 * the app's files: no pgferry invariant broken.
 */

const PYTHON = process.env.PGFERRY_TEST_PYTHON ?? '/usr/bin/python3';
const FIXTURES = fileURLToPath(new URL('./fixtures/python/', import.meta.url));
const DEFAULT_USER = 'owner_1';

interface OrmMessage {
  id: number;
  role: string;
  content: string | null;
  stage1_data: unknown;
  stage2_data: unknown;
  stage3_data: unknown;
  metadata: unknown;
}
interface OrmRead {
  conversations: { id: string; user_id: string; title: string; messages: OrmMessage[] }[];
  usage: { id: number; user_id: string; tier: string; daily_used: number; monthly_used: number; total_queries: number }[];
}

/** Fails (never skips) without python3 and the modules: CI installs them in .ci/run. */
function requirePython(): void {
  const probe = spawnSync(PYTHON, ['-c', 'import sqlalchemy, psycopg2'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      `the foreign-ORM test needs ${PYTHON} with SQLAlchemy and psycopg2 ` +
        `(Debian: apt-get install python3 python3-sqlalchemy python3-psycopg2; .ci/run does this): ` +
        `${probe.error?.message ?? probe.stderr.trim()}`,
    );
  }
}

function runApp(url: string, ...args: string[]): unknown {
  const run = spawnSync(PYTHON, [path.join(FIXTURES, 'seed001_app.py'), url, ...args], { cwd: FIXTURES, encoding: 'utf8' });
  if (run.error || run.status !== 0) throw new Error(`seed001_app.py ${args.join(' ')} failed: ${run.error?.message ?? run.stderr}`);
  return JSON.parse(run.stdout);
}

/** A store message in the ORM's shape (JSONB values tagged again, as the database holds them). */
const asRow = (m: Message) => ({
  role: m.role,
  content: m.role === 'user' ? m.content : null,
  stage1_data: m.role === 'assistant' ? toJsonb(m.stage1) : null,
  stage2_data: m.role === 'assistant' ? toJsonb(m.stage2) : null,
  stage3_data: m.role === 'assistant' ? toJsonb(m.stage3) : null,
  metadata: m.role === 'assistant' && m.metadata !== undefined ? toJsonb(m.metadata) : null,
});
const ormRow = ({ id: _id, ...rest }: OrmMessage) => rest;

let tmp: string;
let dir: string;
let db: TestDatabase;
let store: Store;

beforeAll(async () => {
  requirePython();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-orm-'));
  dir = path.join(tmp, 'data');
  await writeQuirksCorpus(dir);
  db = await createTestDatabase();
  const imported = await runCli(['import', '--from', dir, '--to', db.url, '--default-user', DEFAULT_USER]);
  expect(imported.code, imported.stdout + imported.stderr).toBe(0);
  store = createPostgresStore({ db: db.db, tierLimits: DEFAULT_TIER_LIMITS });
});

afterAll(async () => {
  await db?.drop();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

describe("seed 001's SQLAlchemy models on pgferry's tables", () => {
  it('read every imported conversation with its messages in order, and its usage', async () => {
    const read = runApp(db.url, 'read') as OrmRead;
    const ids = await db.db.sql<{ id: string; user_id: string }[]>`select id, user_id from conversations order by id`;
    expect(read.conversations.map((c) => c.id)).toEqual(ids.map((r) => r.id));
    for (const conversation of read.conversations) {
      const stored = await store.conversations.get(conversation.user_id, conversation.id);
      expect(conversation.title).toBe(stored.title);
      expect(conversation.messages.map(ormRow)).toEqual(stored.messages.map(asRow));
    }
    const usage = await db.db.sql`
      select id::int as id, user_id, tier, daily_used, monthly_used, total_queries::int as total_queries from usage order by user_id`;
    expect(read.usage).toEqual([...usage]);
    expect(read.usage.map((u) => u.user_id)).toEqual(['user_a', 'user_b']);
    expect(new Set(read.usage.map((u) => u.id)).size).toBe(read.usage.length);
  });

  it("messages the ORM inserts get pgferry's next positions, and verify passes after an export", async () => {
    const before = await store.conversations.get('user_b', 'conv-b1');
    const written = runApp(db.url, 'append', 'conv-b1') as { messages: number[]; usage_id: number };
    expect(written.usage_id).toBeGreaterThan(0);

    const after = await store.conversations.get('user_b', 'conv-b1');
    expect(after.messages.map((m) => [m.position, m.role])).toEqual([
      [0, 'user'],
      [1, 'user'],
      [2, 'assistant'],
    ]);
    expect(after.messages[1]).toMatchObject({ content: 'Asked through SQLAlchemy' });
    expect(after.messages[2]).toMatchObject({ stage3: { model: 'orm/chair', response: 'final from the ORM' } });
    expect(after.messageCount).toBe(3);
    expect(after.updatedAt > before.updatedAt).toBe(true);
    // pgferry's own append continues after the ORM's rows.
    const next = await store.conversations.addUserMessage('user_b', 'conv-b1', 'and pgferry again');
    expect(next.position).toBe(3);
    expect((await store.usage.get('orm_user')).tier).toBe('pro');

    // Every conversation: positions 0..n-1 and message_count = n.
    const broken = await db.db.sql`
      select c.id from conversations c left join messages m on m.conversation_id = c.id
       group by c.id, c.message_count
      having c.message_count <> count(m.id) or coalesce(max(m.position), -1) <> count(m.id) - 1`;
    expect(broken).toEqual([]);

    await exportConversation('user_b', 'conv-b1', path.join(dir, 'conversations/user_b/conv-b1.json'));
    await exportUsage('orm_user', path.join(dir, 'usage/orm_user/usage.json'));
    const verified = await runCli(['verify', '--from', dir, '--to', db.url, '--default-user', DEFAULT_USER]);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
  });
});

/** The conversation as the chat app's file (seed 001's storage.py shape), from pgferry's store. */
async function exportConversation(userId: string, id: string, file: string): Promise<void> {
  const c = await store.conversations.get(userId, id);
  // The app's naive UTC timestamps with microseconds; a message without one has none.
  const naive = (iso: string | null) => (iso === null ? undefined : iso.replace('Z', '000'));
  await writeJsonFileAtomic(file, {
    id: c.id,
    user_id: userId,
    created_at: naive(c.createdAt),
    updated_at: naive(c.updatedAt),
    title: c.title,
    messages: c.messages.map((m) =>
      m.role === 'user'
        ? { role: 'user', content: m.content, created_at: naive(m.createdAt) }
        : {
            role: 'assistant',
            stage1: m.stage1,
            stage2: m.stage2,
            stage3: m.stage3,
            ...(m.metadata === undefined ? {} : { metadata: m.metadata }),
            created_at: naive(m.createdAt),
          },
    ),
  });
}

async function exportUsage(userId: string, file: string): Promise<void> {
  const [row] = await db.db.sql`
    select user_id, tier, daily_used, daily_limit, monthly_used, monthly_limit, total_queries::int as total_queries,
           last_reset_daily::text as last_reset_daily, last_reset_monthly::text as last_reset_monthly
      from usage where user_id = ${userId}`;
  await writeJsonFileAtomic(file, row);
}
