import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { derivedKey } from '../src/transfer/records.ts';
import { runCli, write } from './fixtures/import-corpus.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * The same conversation id in two users' trees (the chat app minted ids per
 * user; the JSON store let alice create with bob's id): import keeps both —
 * the first copy in path order keeps the id, the other is imported under a
 * derived id, with a warning naming the mapping — and verify accounts for it.
 */
describe('import: the same conversation id in two users’ trees', () => {
  let tmp: string;
  let db: TestDatabase;
  const conversation = (user: string, title: string) =>
    JSON.stringify({ id: 'c-same', user_id: user, created_at: '2024-05-01T10:00:00', title, messages: [{ role: 'user', content: title }] });

  beforeAll(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-same-id-'));
    db = await createTestDatabase({ prefix: 'sameid' });
    await write(tmp, 'data/conversations/bob/c-same.json', conversation('bob', "bob's"));
    await write(tmp, 'data/conversations/alice/c-same.json', conversation('alice', "alice's"));
  });
  afterAll(async () => {
    await db?.drop();
    await fs.rm(tmp, { recursive: true, force: true });
  });

  it('imports both (exit 0), verify agrees (exit 0), and a re-import changes nothing', async () => {
    const from = path.join(tmp, 'data');
    const derived = derivedKey('c-same', 'conversations/bob/c-same.json');
    const imported = await runCli(['import', '--from', from, '--to', db.url]);
    expect(imported.code, imported.stdout + imported.stderr).toBe(0);
    expect(imported.stdout + imported.stderr).toContain(derived);

    const rows = await db.db.sql`
      select c.id, c.user_id, c.title, m.content from conversations c join messages m on m.conversation_id = c.id order by c.id`;
    expect(rows).toEqual([
      { id: 'c-same', user_id: 'alice', title: "alice's", content: "alice's" },
      { id: derived, user_id: 'bob', title: "bob's", content: "bob's" },
    ]);
    const log = await db.db.sql`select record_key, source, status from import_log where kind = 'conversation' order by record_key`;
    expect(log).toEqual([
      { record_key: 'c-same', source: 'conversations/alice/c-same.json', status: 'inserted' },
      { record_key: derived, source: 'conversations/bob/c-same.json', status: 'inserted' },
    ]);

    const verified = await runCli(['verify', '--from', from, '--to', db.url]);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    const again = await runCli(['import', '--from', from, '--to', db.url]);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect((await db.db.sql`select count(*)::int as n from conversations`)[0]?.n).toBe(2);
  }, 120_000);
});
