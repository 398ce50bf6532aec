import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TIER_LIMITS } from '../src/config.ts';
import { createJsonStore } from '../src/store/json/index.ts';
import type { Store } from '../src/store/types.ts';
import { runCli } from './fixtures/import-corpus.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * The chat app's own Python JSON storage (test/fixtures/python/chat_json_app.py,
 * written the way the seed app writes) and pgferry's JSON backend on one data
 * directory, taking turns (issue 8 items 2 and 3): what each writes, the
 * other reads; pgferry leaves the app's values and formats as the app wrote
 * them (2.0 stays a float, big integers exact, timestamps Python 3.10 can
 * parse, no fields the app does not write); and pgferry's list stays true
 * after the app changes a file behind its back. Then `pgferry import` and
 * `verify` carry the tree into PostgreSQL without a change.
 */

const PYTHON = process.env.PGFERRY_TEST_PYTHON ?? '/usr/bin/python3';
const APP = fileURLToPath(new URL('./fixtures/python/chat_json_app.py', import.meta.url));
const USER = 'firebase-uid-7';

let tmp: string;
let dataDir: string;
let store: Store;
let db: TestDatabase;

function app(step: Record<string, unknown>): unknown {
  const run = spawnSync(PYTHON, [APP, dataDir, JSON.stringify({ user: USER, ...step })], { encoding: 'utf8' });
  if (run.error || run.status !== 0)
    throw new Error(`chat_json_app.py ${JSON.stringify(step)} failed: ${run.error?.message ?? run.stderr}`);
  return JSON.parse(run.stdout);
}

interface Described {
  keys: string[];
  title: string;
  message_count: number;
  message_keys: string[][];
  average_ranks: [string, string, string][];
  tokens: string[];
}

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-pyapp-'));
  dataDir = path.join(tmp, 'data');
  store = createJsonStore({ dataDir, tierLimits: DEFAULT_TIER_LIMITS });
  db = await createTestDatabase();
});

afterAll(async () => {
  await store?.close();
  await db?.drop();
  await fs.rm(tmp, { recursive: true, force: true });
});

describe("the chat app's Python storage and pgferry's JSON backend on one directory", () => {
  it('pgferry changes an app file without changing its values or its format', async () => {
    app({ op: 'create', id: 'conv-app' });
    app({ op: 'user', id: 'conv-app', content: 'Rank these' });
    app({ op: 'assistant', id: 'conv-app' });

    await store.conversations.addUserMessage(USER, 'conv-app', 'and once more');
    await store.conversations.updateTitle(USER, 'conv-app', 'Ranked');
    await store.conversations.addAssistantMessage(USER, 'conv-app', { stage1: [], stage2: [], stage3: { model: 'chair', response: 'ok' } });

    const seen = app({ op: 'describe', id: 'conv-app' }) as Described;
    expect(seen.title).toBe('Ranked');
    expect(seen.message_count).toBe(4);
    expect(seen.keys).toEqual(['created_at', 'id', 'messages', 'title', 'user_id']); // no updated_at added
    expect(seen.message_keys).toEqual([
      ['content', 'role'],
      ['metadata', 'role', 'stage1', 'stage2', 'stage3'],
      ['content', 'role'], // no created_at added to the app's messages
      ['role', 'stage1', 'stage2', 'stage3'],
    ]);
    // Still Python floats and an exact int after pgferry rewrote the file twice.
    expect(seen.average_ranks).toEqual([
      ['m1', 'float', '2.0'],
      ['m2', 'float', '2.0'],
      ['m3', 'float', 'inf'],
    ]);
    expect(seen.tokens[0]).toBe('12345678901234567890');
  });

  it("a conversation pgferry creates is one the app reads with Python 3.10's fromisoformat", async () => {
    await store.conversations.create(USER, { id: 'conv-pgferry', title: 'From pgferry' });
    await store.conversations.addUserMessage(USER, 'conv-pgferry', 'hello');
    const seen = app({ op: 'describe', id: 'conv-pgferry' }) as Described;
    expect(seen.keys).toEqual(['created_at', 'id', 'messages', 'title', 'user_id']);
    const listed = app({ op: 'list' }) as { id: string; message_count: number }[];
    expect(listed.map((c) => c.id).sort()).toEqual(['conv-app', 'conv-pgferry']);
  });

  it("pgferry's list follows the app's changes, which touch no timestamp", async () => {
    const before = await store.conversations.list(USER);
    expect(before.items[0]?.id).toBe('conv-pgferry');
    await new Promise((resolve) => setTimeout(resolve, 20));
    app({ op: 'user', id: 'conv-app', content: 'the app appends' });
    const after = await store.conversations.list(USER);
    expect(after.items.map((c) => c.id)).toEqual(['conv-app', 'conv-pgferry']);
    expect(after.items[0]?.messageCount).toBe(5);
    expect(Date.parse(after.items[0]!.updatedAt)).toBeGreaterThan(Date.parse(before.items[0]!.updatedAt));
  });

  it('import and verify carry the shared tree into PostgreSQL unchanged', async () => {
    const imported = await runCli(['import', '--from', dataDir, '--to', db.url]);
    expect(imported.code, imported.stdout + imported.stderr).toBe(0);
    const verified = await runCli(['verify', '--from', dataDir, '--to', db.url]);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    const [row] = await db.db.sql<{ metadata: string; stage3: string }[]>`
      select metadata::text as metadata, stage3_data::text as stage3 from messages
       where conversation_id = 'conv-app' and metadata is not null`;
    expect(row!.metadata).toContain('"average_rank": 2.0');
    expect(row!.stage3).toContain('"tokens": 12345678901234567890');
  });
});
