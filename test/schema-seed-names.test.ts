import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_TIER_LIMITS } from '../src/config.ts';
import { createPostgresStore } from '../src/store/postgres/index.ts';
import type { Store } from '../src/store/types.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * Schema 0002 (issue 8 item 4): the seeds' names, and the triggers that keep
 * pgferry's own columns true for rows another writer puts in with plain SQL —
 * what `psql` or an app's ORM sends.
 */

let db: TestDatabase;
let store: Store;

beforeAll(async () => {
  db = await createTestDatabase();
  store = createPostgresStore({ db: db.db, tierLimits: DEFAULT_TIER_LIMITS });
});

afterAll(async () => {
  await db?.drop();
});

beforeEach(async () => {
  await db.db.sql`truncate conversations, messages, usage, uploads, file_moves`;
});

const positions = async (id: string) =>
  (
    await db.db.sql<{ position: number; content: string }[]>`
      select position, content from messages where conversation_id = ${id} order by position`
  ).map((r) => [r.position, r.content]);

const conversation = async (id: string) => {
  const [row] = await db.db.sql<{ message_count: number; updated_at: Date }[]>`
    select message_count, updated_at from conversations where id = ${id}`;
  return row!;
};

describe('messages written by someone else', () => {
  it('a message inserted without a position takes the next one, bumps message_count and updated_at', async () => {
    await store.conversations.create('u1', { id: 'c1' });
    await store.conversations.addUserMessage('u1', 'c1', 'zero');
    await db.db.sql`update conversations set updated_at = '2020-01-01Z' where id = 'c1'`;
    await db.db.sql`insert into messages (conversation_id, role, content) values ('c1', 'user', 'one'), ('c1', 'user', 'two')`;
    expect(await positions('c1')).toEqual([
      [0, 'zero'],
      [1, 'one'],
      [2, 'two'],
    ]);
    const row = await conversation('c1');
    expect(row.message_count).toBe(3);
    expect(row.updated_at.getTime()).toBeGreaterThan(Date.parse('2024-01-01'));
    expect((await store.conversations.addUserMessage('u1', 'c1', 'three')).position).toBe(3);
  });

  it('a message for a missing conversation is a foreign-key error, not a null position', async () => {
    await expect(db.db.sql`insert into messages (conversation_id, role, content) values ('nope', 'user', 'x')`).rejects.toMatchObject({
      code: '23503',
    });
  });

  it('deleting messages renumbers the rest and recounts; deleting the conversation still cascades', async () => {
    await store.conversations.create('u1', { id: 'c1' });
    for (const text of ['a', 'b', 'c', 'd', 'e']) await store.conversations.addUserMessage('u1', 'c1', text);
    await db.db.sql`delete from messages where conversation_id = 'c1' and content in ('b', 'd')`;
    expect(await positions('c1')).toEqual([
      [0, 'a'],
      [1, 'c'],
      [2, 'e'],
    ]);
    expect((await conversation('c1')).message_count).toBe(3);
    expect((await store.conversations.addUserMessage('u1', 'c1', 'f')).position).toBe(3);
    await db.db.sql`delete from messages where conversation_id = 'c1' and content = 'f'`;
    expect((await conversation('c1')).message_count).toBe(3);
    await store.conversations.delete('u1', 'c1');
    expect(await db.db.sql`select 1 from messages`).toHaveLength(0);
  });
});

describe('updated_at', () => {
  it('moves on an UPDATE that does not name it, and keeps a value the writer names', async () => {
    await store.conversations.create('u1', { id: 'c1' });
    await db.db.sql`update conversations set updated_at = '2020-01-01Z' where id = 'c1'`;
    expect((await conversation('c1')).updated_at.toISOString()).toBe('2020-01-01T00:00:00.000Z');
    // Naming it with its current value keeps it too (an injected test clock can repeat an instant).
    await db.db.sql`update conversations set title = 'x', updated_at = '2020-01-01Z' where id = 'c1'`;
    expect((await conversation('c1')).updated_at.toISOString()).toBe('2020-01-01T00:00:00.000Z');
    await db.db.sql`update conversations set title = 'psql was here' where id = 'c1'`;
    expect((await conversation('c1')).updated_at.getTime()).toBeGreaterThan(Date.parse('2024-01-01'));

    await store.usage.consume('u1');
    await db.db.sql`update usage set updated_at = '2020-01-01Z'`;
    await db.db.sql`update usage set tier = 'pro'`;
    const [usage] = await db.db.sql<{ updated_at: Date }[]>`select updated_at from usage`;
    expect(usage!.updated_at.getTime()).toBeGreaterThan(Date.parse('2024-01-01'));
  });
});

describe("the seeds' names", () => {
  it("usage gets seed 001's id on insert without one; pgferry's upsert on user_id still works", async () => {
    await db.db.sql`insert into usage (user_id) values ('orm-user')`;
    await store.usage.consume('orm-user');
    await store.usage.consume('new-user');
    const rows = await db.db.sql<{ id: string; user_id: string; daily_used: number }[]>`
      select id, user_id, daily_used from usage order by id`;
    expect(rows.map((r) => [r.user_id, r.daily_used])).toEqual([
      ['orm-user', 1],
      ['new-user', 1],
    ]);
    expect(rows.every((r) => Number(r.id) > 0)).toBe(true);
  });

  it("seed 002's uploaded_files with its cloudinary columns", async () => {
    const columns = await db.db.sql<{ column_name: string }[]>`
      select column_name from information_schema.columns where table_name = 'uploaded_files' order by ordinal_position`;
    expect(columns.map((c) => c.column_name)).toEqual(expect.arrayContaining(['cloudinary_url', 'cloudinary_public_id', 'file_type']));
  });

  it("seed 004's user_uploads and s3_migration_log write through to uploads and file_moves", async () => {
    const [inserted] = await db.db.sql<{ id: string }[]>`
      insert into user_uploads (user_id, filename, s3_url, s3_bucket, s3_key, upload_type)
      values ('u1', 'a.png', 'https://b.s3.amazonaws.com/k/a.png', 'b', 'k/a.png', 'avatar') returning id`;
    await db.db.sql`update user_uploads set s3_key = 'k/b.png' where id = ${inserted!.id}`;
    const [upload] = await db.db.sql`select storage, bucket, file_key, url from uploads where id = ${inserted!.id}`;
    expect(upload).toEqual({ storage: 's3', bucket: 'b', file_key: 'k/b.png', url: 'https://b.s3.amazonaws.com/k/a.png' });

    await db.db.sql`
      insert into s3_migration_log (table_name, record_id, old_url, new_s3_url, migration_status)
      values ('business_profiles', 'r1', 'https://old/x', 'https://s3/x', 'migrated'), ('business_profiles', 'r2', null, null, 'failed')`;
    const [move] = await db.db.sql`select source_store, target_store, new_url from file_moves where record_id = 'r1'`;
    expect(move).toEqual({ source_store: 'external', target_store: 's3', new_url: 'https://s3/x' });
    const progress = await db.db.sql`
      select table_name, migration_status, count::int as count from s3_migration_progress order by migration_status`;
    expect([...progress]).toEqual([
      { table_name: 'business_profiles', migration_status: 'failed', count: 1 },
      { table_name: 'business_profiles', migration_status: 'migrated', count: 1 },
    ]);
  });
});
