import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TIER_LIMITS } from '../src/config.ts';
import {
  MAX_CONVERSATION_BYTES,
  MAX_JSON_DEPTH,
  MAX_MESSAGE_BYTES,
  MESSAGES_PAGE_BYTES,
  messageBytes,
  nestsDeeperThan,
} from '../src/domain/limits.ts';
import { isPgFerryError } from '../src/errors.ts';
import { readConversation } from '../src/formats/chat-conversation.ts';
import { createJsonStore } from '../src/store/json/index.ts';
import { createPostgresStore } from '../src/store/postgres/index.ts';
import type { Store } from '../src/store/types.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * Issue 9 items 2 and 3: one set of limits for what a store accepts (the
 * same on both backends and in the shared file reader the importer uses),
 * files written compactly, and GET pages bounded by count and bytes.
 */

const KB = 1000;
const MB = 1000 * KB;

/** An object nested `depth` levels below the top (the top is depth 0). */
function nested(depth: number): unknown {
  let value: unknown = { leaf: true };
  for (let i = 0; i < depth; i++) value = { next: value };
  return value;
}

/** A user message whose JSON (the content as a JSON string) is exactly `bytes` long. */
const contentOf = (bytes: number) => 'x'.repeat(bytes - 2);

async function refusal(promise: Promise<unknown>): Promise<{ code: string; details: unknown }> {
  try {
    await promise;
  } catch (error) {
    if (isPgFerryError(error)) return { code: error.code, details: error.details };
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('the limits themselves', () => {
  it('measure depth iteratively, even 200,000 levels deep', () => {
    expect(nestsDeeperThan(nested(MAX_JSON_DEPTH))).toBe(false);
    expect(nestsDeeperThan(nested(MAX_JSON_DEPTH + 1))).toBe(true);
    expect(nestsDeeperThan(nested(200_000))).toBe(true);
  });

  it('measure a message as its compact JSON', () => {
    expect(messageBytes({ role: 'user', content: 'héllo' })).toBe(8);
    expect(messageBytes({ role: 'assistant', stage1: [], stage2: [1, 2], stage3: null })).toBe(2 + 5 + 4);
    expect(messageBytes({ role: 'assistant', stage1: [], stage2: [], stage3: null, metadata: { a: 1 } })).toBe(2 + 2 + 4 + 7);
  });

  it('leave room for the 1 MB message contract, and a page always holds the largest message', () => {
    expect(MAX_MESSAGE_BYTES).toBeGreaterThan(1024 * 1024 + 100);
    expect(MESSAGES_PAGE_BYTES).toBeGreaterThanOrEqual(MAX_MESSAGE_BYTES);
  });
});

type Opened = { store: Store; cleanup(): Promise<void>; testDb?: TestDatabase; dataDir?: string };

const backends: Record<string, () => Promise<Opened>> = {
  json: async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-limits-'));
    const store = createJsonStore({ dataDir, tierLimits: DEFAULT_TIER_LIMITS });
    return { store, dataDir, cleanup: () => rm(dataDir, { recursive: true, force: true }) };
  },
  postgres: async () => {
    const testDb = await createTestDatabase({ prefix: 'limits' });
    const store = createPostgresStore({ db: testDb.db, tierLimits: DEFAULT_TIER_LIMITS });
    return { store, testDb, cleanup: () => testDb.drop() };
  },
};

/** Page through a conversation; every page's messages within the budget (or a single message). */
async function pageThrough(store: Store, user: string, id: string): Promise<{ pages: number[]; positions: number[] }> {
  const pages: number[] = [];
  const positions: number[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await store.conversations.get(user, id, cursor === undefined ? {} : { messagesCursor: cursor });
    const bytes = Buffer.byteLength(JSON.stringify(page.messages));
    // The page's JSON: the messages' own sizes plus their fields (role, position, createdAt).
    expect(page.messages.length === 1 || bytes <= MESSAGES_PAGE_BYTES + page.messages.length * 200).toBe(true);
    expect(page.messages.length).toBeGreaterThan(0);
    pages.push(page.messages.length);
    positions.push(...page.messages.map((m) => m.position));
    if (page.nextMessagesCursor === null) return { pages, positions };
    cursor = page.nextMessagesCursor;
  }
}

for (const [name, open] of Object.entries(backends)) {
  describe(`store limits: ${name}`, () => {
    let opened: Opened;
    beforeAll(async () => {
      opened = await open();
    });
    afterAll(async () => {
      await opened.store.close();
      await opened.cleanup();
    });

    it('refuses stage data nested deeper than the limit (INVALID_INPUT) and accepts it at the limit', async () => {
      const { store } = opened;
      const c = await store.conversations.create('u_depth');
      const ok = await store.conversations.addAssistantMessage('u_depth', c.id, {
        stage1: [nested(MAX_JSON_DEPTH - 2)],
        stage2: [],
        stage3: null,
      });
      expect(ok.position).toBe(0);
      const deep = { stage1: [nested(MAX_JSON_DEPTH - 1)], stage2: [], stage3: null };
      expect((await refusal(store.conversations.addAssistantMessage('u_depth', c.id, deep))).code).toBe('INVALID_INPUT');
      const hostile = { stage1: [nested(100_000)], stage2: [], stage3: null };
      expect((await refusal(store.conversations.addAssistantMessage('u_depth', c.id, hostile))).code).toBe('INVALID_INPUT');
    });

    it('refuses a message over MAX_MESSAGE_BYTES (PAYLOAD_TOO_LARGE), user or assistant', async () => {
      const { store } = opened;
      const c = await store.conversations.create('u_big');
      await store.conversations.addUserMessage('u_big', c.id, contentOf(MAX_MESSAGE_BYTES));
      const over = await refusal(store.conversations.addUserMessage('u_big', c.id, contentOf(MAX_MESSAGE_BYTES + 1)));
      expect(over).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', details: { limit: 'messageBytes' } });
      const stages = { stage1: [{ response: 'y'.repeat(MAX_MESSAGE_BYTES) }], stage2: [], stage3: null };
      expect((await refusal(store.conversations.addAssistantMessage('u_big', c.id, stages))).code).toBe('PAYLOAD_TOO_LARGE');
      expect((await store.conversations.get('u_big', c.id)).messageCount).toBe(1);
    });

    it('refuses an append past MAX_CONVERSATION_BYTES (UNPROCESSABLE) and counts no query for it', async () => {
      const { store } = opened;
      const user = 'u_full';
      const c = await store.conversations.create(user);
      const count = MAX_CONVERSATION_BYTES / MAX_MESSAGE_BYTES;
      for (let i = 0; i < count; i++) await store.conversations.addUserMessage(user, c.id, contentOf(MAX_MESSAGE_BYTES));
      const full = await refusal(store.conversations.addUserMessage(user, c.id, 'one more'));
      expect(full).toMatchObject({ code: 'UNPROCESSABLE', details: { limit: 'conversationBytes', max: MAX_CONVERSATION_BYTES } });
      const before = (await store.usage.get(user)).totalQueries;
      expect((await refusal(store.conversations.sendUserMessage(user, c.id, 'one more'))).code).toBe('UNPROCESSABLE');
      expect((await store.usage.get(user)).totalQueries).toBe(before);
      // Still served, page by page, within the budget.
      const { pages, positions } = await pageThrough(store, user, c.id);
      expect(positions).toEqual([...Array(count).keys()]);
      expect(Math.max(...pages)).toBe(MESSAGES_PAGE_BYTES / MAX_MESSAGE_BYTES);
    }, 120_000);

    it('pages a conversation of ~1 MB messages by bytes: 200, bounded pages, a cursor to the end', async () => {
      const { store } = opened;
      const user = 'u_pages';
      const c = await store.conversations.create(user);
      const n = 7; // ~7 MB: within MAX_CONVERSATION_BYTES
      for (let i = 0; i < n; i++) {
        if (i % 2 === 0) await store.conversations.addUserMessage(user, c.id, contentOf(MB));
        else
          await store.conversations.addAssistantMessage(user, c.id, {
            stage1: [{ model: 'm', response: 'r'.repeat(MB) }],
            stage2: [],
            stage3: null,
          });
      }
      const first = await store.conversations.get(user, c.id);
      expect(first.messages.length).toBe(4); // 4 × ~1 MB fit 4 MiB, a 5th would not
      expect(first.nextMessagesCursor).not.toBeNull();
      const { positions } = await pageThrough(store, user, c.id);
      expect(positions).toEqual([...Array(n).keys()]);
      // The count limit still applies on top of the bytes.
      const two = await store.conversations.get(user, c.id, { messagesLimit: 2 });
      expect(two.messages.map((m) => m.position)).toEqual([0, 1]);
    }, 120_000);

    if (name === 'postgres') {
      it('serves a legacy conversation of 60 × 1 MB rows (over the limits) without loading it whole', async () => {
        const { store, testDb } = opened;
        const user = 'u_legacy';
        const c = await store.conversations.create(user);
        // Rows another writer put there before the limits: 60 MB in one conversation.
        await testDb!.db.sql`
          insert into messages (conversation_id, position, role, content, stage1_data, stage2_data, stage3_data)
          select ${c.id}, g, case when g % 2 = 0 then 'user' else 'assistant' end,
                 case when g % 2 = 0 then repeat('x', 1000000) end,
                 case when g % 2 = 1 then jsonb_build_array(jsonb_build_object('response', repeat('y', 1000000))) end,
                 case when g % 2 = 1 then '[]'::jsonb end, null
            from generate_series(0, 59) g`;
        await testDb!.db.sql`update conversations set message_count = 60 where id = ${c.id}`;
        const heapBefore = process.memoryUsage().heapUsed;
        const first = await store.conversations.get(user, c.id);
        expect(first.messages.length).toBe(4);
        expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(64 * 1024 * 1024);
        const { positions } = await pageThrough(store, user, c.id);
        expect(positions).toEqual([...Array(60).keys()]);
        // Full: no room to grow (it is over the limit already).
        expect((await refusal(store.conversations.addUserMessage(user, c.id, 'more'))).code).toBe('UNPROCESSABLE');
      }, 120_000);
    }

    if (name === 'json') {
      it('writes a deep conversation compactly: the file stays within 2× of its content', async () => {
        const { store, dataDir } = opened;
        const user = 'u_compact';
        const c = await store.conversations.create(user);
        // ~1 MB of stage data nested 60 deep (the 67 MB-per-append case when indented).
        const leaf = Array.from({ length: 2000 }, (_, i) => ({ i, text: 'z'.repeat(400) }));
        let deep: unknown = leaf;
        for (let i = 0; i < 60; i++) deep = { level: i, child: deep };
        const stages = { stage1: [deep], stage2: [], stage3: null };
        const content = messageBytes({ role: 'assistant', ...stages });
        for (let i = 0; i < 3; i++) await store.conversations.addAssistantMessage(user, c.id, stages);
        const file = path.join(dataDir!, 'conversations', user, `${c.id}.json`);
        const size = (await stat(file)).size;
        expect(size).toBeLessThan(2 * 3 * content);
        expect(JSON.parse(await readFile(file, 'utf8')).messages).toHaveLength(3);
        // A small file keeps the app's own indent=2 layout.
        const small = await store.conversations.create(user, { title: 'small' });
        await store.conversations.addUserMessage(user, small.id, 'hi');
        expect(await readFile(path.join(dataDir!, 'conversations', user, `${small.id}.json`), 'utf8')).toContain('\n  "messages": [\n');
      });

      it('reports a file over the limits as CORRUPT_DATA; the importer rejects it with the same reason', async () => {
        const { store, dataDir } = opened;
        const user = 'u_overfile';
        const dir = path.join(dataDir!, 'conversations', user);
        await mkdir(dir, { recursive: true });
        const doc = {
          id: 'deep',
          user_id: user,
          created_at: '2024-05-01T10:20:30.123456',
          title: 't',
          messages: [{ role: 'assistant', stage1: [nested(MAX_JSON_DEPTH + 5)], stage2: [], stage3: null }],
        };
        await writeFile(path.join(dir, 'deep.json'), JSON.stringify(doc));
        const read = readConversation(doc, { stem: 'deep', folderUser: user, mtimeMs: 0 });
        expect(read).toMatchObject({ ok: false, reason: `message 0: nests deeper than ${MAX_JSON_DEPTH} levels` });
        const error = await refusal(store.conversations.get(user, 'deep'));
        expect(error.code).toBe('CORRUPT_DATA');
        const big = { ...doc, id: 'big', messages: [{ role: 'user', content: contentOf(MAX_MESSAGE_BYTES + 1) }] };
        const bigRead = readConversation(big, { stem: 'big', folderUser: user, mtimeMs: 0 });
        expect(bigRead.ok).toBe(false);
        expect(bigRead.ok ? '' : bigRead.reason).toMatch(/^message 0: the message is \d+ bytes, over the limit of 2 MiB$/);
      });
    }
  });
}
