import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConversationSummary } from '../src/domain/conversations.ts';
import { createJsonStore } from '../src/store/json/index.ts';
import { createPostgresStore } from '../src/store/postgres/index.ts';
import type { Store } from '../src/store/types.ts';
import { CONTRACT_LIMITS, MALFORMED_LIST_CURSORS } from './contract/store-contract.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * One cursor format on both backends (issue 8, item 7): the cutover modes
 * compose a JSON and a PostgreSQL store, so a cursor one hands out must page
 * the other. Both stores hold the same data — written through the Store with
 * a frozen clock, or seeded directly with microsecond timestamps the API's
 * milliseconds cannot tell apart — and every walk that alternates backends
 * must give exactly the single-backend order.
 */

let json: Store;
let pg: Store;
let testDb: TestDatabase;
let dataDir: string;
let frozen = new Date('2026-02-03T04:05:06.789Z');
const clock = () => new Date(frozen);

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-cross-'));
  testDb = await createTestDatabase();
  json = createJsonStore({ dataDir, tierLimits: CONTRACT_LIMITS, clock });
  pg = createPostgresStore({ db: testDb.db, tierLimits: CONTRACT_LIMITS, clock });
});

afterAll(async () => {
  await json?.close();
  await pg?.close();
  await testDb?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

/** Page through `userId`'s list, taking each page from the next store in `order` (round robin). */
async function walk(userId: string, order: Store[], limit: number): Promise<ConversationSummary[]> {
  const seen: ConversationSummary[] = [];
  let cursor: string | undefined;
  let turn = 0;
  do {
    const page = await order[turn++ % order.length]!.conversations.list(userId, { limit, cursor });
    seen.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return seen;
}

describe('cursors across backends', () => {
  it('pages conversations created through the Store alternately on JSON and PostgreSQL', async () => {
    const user = 'cross-store-user';
    // Three instants, several conversations on each (ties broken by id), one retitled later.
    for (let i = 0; i < 12; i++) {
      frozen = new Date(Date.UTC(2026, 1, 3, 4, 5, 6, 789 + Math.floor(i / 4)));
      for (const store of [json, pg]) await store.conversations.create(user, { id: `conv-${String(i).padStart(2, '0')}`, title: `t${i}` });
    }
    frozen = new Date('2026-02-03T05:00:00.000Z');
    for (const store of [json, pg]) await store.conversations.updateTitle(user, 'conv-03', 'renamed');

    const onJson = await walk(user, [json], 5);
    const onPg = await walk(user, [pg], 5);
    expect(onJson).toEqual(onPg);
    expect(onJson.map((c) => c.id)).toEqual([
      'conv-03',
      ...['conv-11', 'conv-10', 'conv-09', 'conv-08', 'conv-07', 'conv-06', 'conv-05', 'conv-04', 'conv-02', 'conv-01', 'conv-00'],
    ]);
    for (const limit of [1, 2, 5]) {
      expect(await walk(user, [json, pg], limit)).toEqual(onJson);
      expect(await walk(user, [pg, json], limit)).toEqual(onJson);
    }
  });

  it('pages rows that share a millisecond by their microseconds, on either backend', async () => {
    const user = 'cross-micro-user';
    // Seed-format files (naive UTC, microseconds) and the same rows in PostgreSQL.
    const rows = Array.from({ length: 9 }, (_, i) => ({
      id: `m${i}`,
      created: '2024-01-01T08:00:00.000000',
      // m0..m5 share one millisecond, 1 µs apart, in reverse id order; m6..m8 tie exactly.
      updated: i < 6 ? `2024-01-01T10:00:00.123${String(9 - i).padStart(3, '0')}` : '2024-01-01T09:00:00.500000',
    }));
    await mkdir(path.join(dataDir, 'conversations', user), { recursive: true });
    for (const row of rows) {
      const doc = { id: row.id, user_id: user, created_at: row.created, updated_at: row.updated, title: row.id, messages: [] };
      const file = path.join(dataDir, 'conversations', user, `${row.id}.json`);
      await writeFile(file, JSON.stringify(doc));
      // Files written long ago: their modification time (which also counts as a change) is older than updated_at.
      await utimes(file, new Date('2024-01-01T07:00:00Z'), new Date('2024-01-01T07:00:00Z'));
      await testDb.db.sql`
        insert into conversations (id, user_id, title, created_at, updated_at)
        values (${row.id}, ${user}, ${row.id}, ${`${row.created}Z`}::text::timestamptz, ${`${row.updated}Z`}::text::timestamptz)`;
    }
    const expected = ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm8', 'm7', 'm6'];
    const onJson = await walk(user, [json], 2);
    expect(onJson.map((c) => c.id)).toEqual(expected);
    expect(await walk(user, [pg], 2)).toEqual(onJson);
    for (const limit of [1, 2, 4]) {
      expect((await walk(user, [json, pg], limit)).map((c) => c.id)).toEqual(expected);
      expect((await walk(user, [pg, json], limit)).map((c) => c.id)).toEqual(expected);
    }
  });

  it('pages messages with a cursor from the other backend', async () => {
    const user = 'cross-messages-user';
    for (const store of [json, pg]) {
      await store.conversations.create(user, { id: 'talk' });
      for (let i = 0; i < 7; i++) await store.conversations.addUserMessage(user, 'talk', `m${i}`);
    }
    const first = await json.conversations.get(user, 'talk', { messagesLimit: 3 });
    const second = await pg.conversations.get(user, 'talk', { messagesLimit: 3, messagesCursor: first.nextMessagesCursor! });
    const third = await json.conversations.get(user, 'talk', { messagesLimit: 3, messagesCursor: second.nextMessagesCursor! });
    expect([...first.messages, ...second.messages, ...third.messages]).toEqual((await pg.conversations.get(user, 'talk')).messages);
    expect(third.nextMessagesCursor).toBeNull();
  });

  it('refuses malformed cursors with the identical error on both backends', async () => {
    for (const cursor of MALFORMED_LIST_CURSORS) {
      const [a, b] = await Promise.all([json, pg].map((store) => store.conversations.list('cross-bad', { cursor }).catch((e) => e)));
      expect(a).toBeInstanceOf(Error);
      expect({ code: a.code, message: a.message, details: a.details }).toEqual({ code: b.code, message: b.message, details: b.details });
    }
  });
});
