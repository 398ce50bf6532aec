import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_TIER_LIMITS, type TierLimits } from '../src/config.ts';
import { isPgFerryError, type PgFerryError } from '../src/errors.ts';
import { parseJsonText } from '../src/formats/json-text.ts';
import { createLogger } from '../src/log.ts';
import { readJsonFile, update, withLockFile } from '../src/store/json/files.ts';
import { createJsonStore } from '../src/store/json/index.ts';
import type { Store } from '../src/store/types.ts';

/**
 * Behaviour specific to the JSON backend, on real files in a temp directory:
 * the seed app's file format, corrupt files, hostile ids, lock files and
 * quota periods under a fake clock. The shared contract suite covers the
 * API semantics common to every backend.
 */

let root: string;
let dataDir: string;

beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'pgferry-json-'));
  dataDir = path.join(root, 'data');
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A clock the test moves by hand. */
function fakeClock(start: string) {
  let now = new Date(start);
  return {
    clock: () => new Date(now),
    set: (iso: string) => {
      now = new Date(iso);
    },
  };
}

function open(options: { clock?: () => Date; tierLimits?: TierLimits; logger?: ReturnType<typeof createLogger> } = {}): Store {
  return createJsonStore({ dataDir, tierLimits: options.tierLimits ?? DEFAULT_TIER_LIMITS, ...options });
}

async function rejection(promise: Promise<unknown>): Promise<PgFerryError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isPgFerryError(error)) throw new Error(`expected a PgFerryError, got ${String(error)}`);
  return error;
}

/** Every file path below `dir`, relative to it. */
async function walk(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

// A conversation exactly as the Python seed app writes it: BOM, CRLF, bare
// NaN/Infinity, naive UTC timestamps, no updated_at, metadata omitted on one
// assistant message, and a field pgferry does not know.
const SEED_CONVERSATION = [
  '\ufeff{',
  '  "id": "seed-1",',
  '  "user_id": "firebase-uid-1",',
  '  "created_at": "2024-03-05T14:07:09.123456",',
  '  "title": "Caf\\u00e9 planning \u2615",',
  '  "pinned": true,',
  '  "messages": [',
  '    {"role": "user", "content": "Where should we eat?"},',
  '    {"role": "assistant",',
  '     "stage1": [{"model": "m1", "response": "Here"}, {"model": "m2", "response": "There"}],',
  '     "stage2": [{"model": "m1", "ranking": "A > B", "parsed_ranking": ["A", "B"], "score": NaN}],',
  '     "stage3": {"model": "chair", "response": "Here", "confidence": Infinity, "floor": -Infinity},',
  '     "metadata": {"label_to_model": {"A": "m1"}, "aggregate_rankings": [{"model": "m1", "average_rank": NaN, "rankings_count": 0}]}},',
  '    {"role": "user", "content": "And tomorrow?"},',
  '    {"role": "assistant", "stage1": [], "stage2": [], "stage3": {"model": "chair", "response": "Same"}}',
  '  ]',
  '}',
].join('\r\n');

async function writeSeedConversation(userId = 'firebase-uid-1', id = 'seed-1', text = SEED_CONVERSATION): Promise<string> {
  const dir = path.join(dataDir, 'conversations', userId);
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${id}.json`);
  await writeFile(file, text);
  return file;
}

describe('JSON store: the seed app file format', () => {
  it('reads a seed file with BOM, CRLF, NaN/Infinity, naive timestamps and missing metadata', async () => {
    const file = await writeSeedConversation();
    const modified = new Date('2024-03-06T09:00:00.000Z');
    await utimes(file, modified, modified);
    const store = open();
    const conversation = await store.conversations.get('firebase-uid-1', 'seed-1');
    expect(conversation).toMatchObject({
      id: 'seed-1',
      userId: 'firebase-uid-1',
      title: 'Café planning ☕',
      createdAt: '2024-03-05T14:07:09.123Z',
      updatedAt: '2024-03-06T09:00:00.000Z', // no updated_at: the file's modification time says when it changed
      messageCount: 4,
      nextMessagesCursor: null,
    });
    const [first, second, , fourth] = conversation.messages;
    // The app's messages carry no timestamp: they take the conversation's, as `pgferry import` does.
    expect(first).toEqual({ role: 'user', position: 0, content: 'Where should we eat?', createdAt: '2024-03-05T14:07:09.123Z' });
    expect(second).toMatchObject({ role: 'assistant', position: 1, stage3: { confidence: Infinity, floor: -Infinity } });
    expect((second as { stage2: Array<{ score: number }> }).stage2[0]?.score).toBeNaN();
    expect(fourth).not.toHaveProperty('metadata');
    await store.close();
  });

  it('round-trips a seed file: an append keeps every original value, bare NaN/Infinity and unknown fields', async () => {
    const file = await writeSeedConversation();
    const before = parseJsonText(await readFile(file, 'utf8')) as Record<string, unknown>;
    const clock = fakeClock('2025-01-02T03:04:05.678Z');
    const store = open({ clock: clock.clock });
    const message = await store.conversations.addUserMessage('firebase-uid-1', 'seed-1', 'one more');
    expect(message).toEqual({ role: 'user', position: 4, content: 'one more', createdAt: '2025-01-02T03:04:05.678Z' });

    const text = await readFile(file, 'utf8');
    expect(text).toMatch(/"score": NaN/);
    expect(text).toMatch(/"confidence": Infinity/);
    expect(text).toMatch(/"floor": -Infinity/);
    const after = parseJsonText(text) as Record<string, unknown> & { messages: unknown[] };
    expect(after.messages.slice(0, 4)).toEqual(before.messages);
    expect(after).toMatchObject({
      id: 'seed-1',
      user_id: 'firebase-uid-1',
      created_at: '2024-03-05T14:07:09.123456', // existing values are not rewritten
      title: 'Café planning ☕',
      pinned: true,
    });
    // Nothing the app does not write: no updated_at, and no timestamp on a message in a file whose messages have none.
    expect(after).not.toHaveProperty('updated_at');
    expect(after.messages[4]).toEqual({ role: 'user', content: 'one more' });
    expect((await stat(file)).mtime.toISOString()).toBe('2025-01-02T03:04:05.678Z');

    const list = await store.conversations.list('firebase-uid-1');
    expect(list.items).toEqual([
      {
        id: 'seed-1',
        title: 'Café planning ☕',
        createdAt: '2024-03-05T14:07:09.123Z',
        updatedAt: '2025-01-02T03:04:05.678Z',
        messageCount: 5,
      },
    ]);
    await store.close();
  });

  it('writes new conversations in the seed shape, metadata omitted when absent', async () => {
    const clock = fakeClock('2025-06-01T12:00:00.000Z');
    const store = open({ clock: clock.clock });
    const created = await store.conversations.create('u1', { id: 'c1', title: 'T' });
    await store.conversations.addAssistantMessage('u1', 'c1', { stage1: [{ model: 'm', response: 'r' }], stage2: [], stage3: { x: NaN } });
    const raw = parseJsonText(await readFile(path.join(dataDir, 'conversations/u1/c1.json'), 'utf8'));
    // The chat app's own form: naive UTC, as Python's isoformat() writes it (no fraction at a whole second), no updated_at.
    expect(raw).toEqual({
      id: 'c1',
      user_id: 'u1',
      created_at: '2025-06-01T12:00:00',
      title: 'T',
      messages: [
        {
          role: 'assistant',
          stage1: [{ model: 'm', response: 'r' }],
          stage2: [],
          stage3: { x: NaN },
          created_at: '2025-06-01T12:00:00',
        },
      ],
    });
    expect(created.createdAt).toBe('2025-06-01T12:00:00.000Z');
    await store.close();
  });

  it('pages messages with messagesCursor (next position)', async () => {
    const store = open();
    await store.conversations.create('u1', { id: 'c1' });
    for (let i = 0; i < 5; i++) await store.conversations.addUserMessage('u1', 'c1', `m${i}`);
    const first = await store.conversations.get('u1', 'c1', { messagesLimit: 2 });
    expect(first.messages.map((m) => m.position)).toEqual([0, 1]);
    const second = await store.conversations.get('u1', 'c1', { messagesLimit: 2, messagesCursor: first.nextMessagesCursor as string });
    expect(second.messages.map((m) => m.position)).toEqual([2, 3]);
    const third = await store.conversations.get('u1', 'c1', { messagesLimit: 2, messagesCursor: second.nextMessagesCursor as string });
    expect(third.messages.map((m) => m.position)).toEqual([4]);
    expect(third.nextMessagesCursor).toBeNull();
    expect(third.messageCount).toBe(5);
    await store.close();
  });

  it('ignores leftover temp and lock files in a user folder', async () => {
    const store = open();
    await store.conversations.create('u1', { id: 'c1' });
    const dir = path.join(dataDir, 'conversations/u1');
    await writeFile(path.join(dir, '.c2.json.999.abcdef.tmp'), '{"id": "c2", "mess');
    await writeFile(path.join(dir, 'c1.json.lock.stale-123'), 'x');
    const list = await store.conversations.list('u1');
    expect(list.items.map((i) => i.id)).toEqual(['c1']);
    await store.close();
  });
});

describe('JSON store: corrupt files', () => {
  const TORN = '{"id": "bad", "user_id": "u1", "created_at": "2024-01-01T00:00:00", "messages": [{"role": "us';

  it('reports CORRUPT_DATA naming the file, never overwrites it, and keeps the process and other data working', async () => {
    const file = await writeSeedConversation('u1', 'bad', TORN);
    await writeSeedConversation('u1', 'good', SEED_CONVERSATION.replace('"id": "seed-1"', '"id": "good"'));
    const logs: string[] = [];
    const logger = createLogger({
      destination: new Writable({
        write(chunk, _enc, done) {
          logs.push(String(chunk));
          done();
        },
      }),
    });
    const store = open({ logger });

    for (const attempt of [
      store.conversations.get('u1', 'bad'),
      store.conversations.addUserMessage('u1', 'bad', 'hello'),
      store.conversations.updateTitle('u1', 'bad', 'x'),
      store.conversations.delete('u1', 'bad'),
      store.conversations.create('u1', { id: 'bad' }),
    ]) {
      const error = await rejection(attempt);
      expect(error.code).toBe('CORRUPT_DATA');
      expect(error.message).toContain(file);
    }
    expect(await readFile(file, 'utf8')).toBe(TORN);

    // list and search skip it, and the log names it.
    const list = await store.conversations.list('u1');
    expect(list.items.map((i) => i.id)).toEqual(['good']);
    expect(await store.conversations.search('u1', 'eat')).toHaveLength(1);
    expect(logs.join('')).toContain(file);
    expect(await store.conversations.addUserMessage('u1', 'good', 'still fine')).toMatchObject({ position: 4 });
    await store.close();
  });

  it('treats a parseable file of the wrong shape as corrupt', async () => {
    const file = await writeSeedConversation('u1', 'shape', '{"id": "shape", "messages": "nope", "created_at": "2024-01-01T00:00:00"}');
    const store = open();
    const error = await rejection(store.conversations.get('u1', 'shape'));
    expect(error).toMatchObject({ code: 'CORRUPT_DATA', details: { path: file } });
    await store.close();
  });

  it('refuses to consume against a corrupt usage file and leaves it as found', async () => {
    const file = path.join(dataDir, 'usage/u1/usage.json');
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, '{"daily_count": 3,');
    const store = open();
    for (const attempt of [store.usage.get('u1'), store.usage.consume('u1'), store.usage.setTier('u1', 'pro')]) {
      const error = await rejection(attempt);
      expect(error.code).toBe('CORRUPT_DATA');
      expect(error.message).toContain(file);
    }
    expect(await readFile(file, 'utf8')).toBe('{"daily_count": 3,');
    await store.close();
  });

  it('readJsonFile: undefined when absent, CORRUPT_DATA for an empty file', async () => {
    expect(await readJsonFile(path.join(root, 'absent.json'))).toBeUndefined();
    await writeFile(path.join(root, 'empty.json'), '');
    expect((await rejection(readJsonFile(path.join(root, 'empty.json')))).code).toBe('CORRUPT_DATA');
  });
});

describe('JSON store: hostile ids', () => {
  const HOSTILE = ['../x', 'a/b', '..', '', 'x'.repeat(200), 'a\u0000b', '.', '/etc/passwd', 'a\\b', '..%2f', ' a', '.hidden'];

  it('rejects every hostile user or conversation id with INVALID_INPUT before touching the disk', async () => {
    const store = open();
    await store.conversations.create('u1', { id: 'c1' });
    const before = await walk(root);
    for (const bad of HOSTILE) {
      const attempts: Array<Promise<unknown>> = [
        store.conversations.create(bad, { id: 'c2' }),
        store.conversations.create('u1', { id: bad }),
        store.conversations.get(bad, 'c1'),
        store.conversations.get('u1', bad),
        store.conversations.list(bad),
        store.conversations.addUserMessage('u1', bad, 'hi'),
        store.conversations.addUserMessage(bad, 'c1', 'hi'),
        store.conversations.addAssistantMessage('u1', bad, { stage1: [], stage2: [], stage3: {} }),
        store.conversations.updateTitle(bad, 'c1', 't'),
        store.conversations.delete('u1', bad),
        store.conversations.search(bad, 'x'),
        store.usage.get(bad),
        store.usage.consume(bad),
        store.usage.setTier(bad, 'pro'),
      ];
      for (const attempt of attempts) expect((await rejection(attempt)).code, JSON.stringify(bad)).toBe('INVALID_INPUT');
    }
    expect(await walk(root)).toEqual(before);
    expect(await readdir(root)).toEqual(['data']);
    await store.close();
  });
});

describe('JSON store: usage file and quota periods', () => {
  const LIMITS: TierLimits = {
    free: { daily: 3, monthly: 5 },
    pro: { daily: 100, monthly: 3000 },
    enterprise: { daily: null, monthly: null },
  };

  it('resets the daily count at midnight UTC and the monthly count on the 1st', async () => {
    const time = fakeClock('2025-01-30T23:59:59.000Z');
    const store = open({ clock: time.clock, tierLimits: LIMITS });
    const consume = async () => (await store.usage.consume('u1')).allowed;

    expect([await consume(), await consume(), await consume(), await consume()]).toEqual([true, true, true, false]);
    const status = await store.usage.get('u1');
    expect(status.daily).toEqual({ used: 3, limit: 3, remaining: 0, resetsAt: '2025-01-31T00:00:00.000Z' });
    expect(status.monthly).toEqual({ used: 3, limit: 5, remaining: 2, resetsAt: '2025-02-01T00:00:00.000Z' });

    time.set('2025-01-31T00:00:00.000Z'); // new day, same month
    expect([await consume(), await consume(), await consume()]).toEqual([true, true, false]); // monthly 5 reached
    expect((await store.usage.get('u1')).daily.used).toBe(2);

    time.set('2025-01-31T23:59:59.999Z');
    expect(await consume()).toBe(false);

    time.set('2025-02-01T00:00:00.000Z'); // new month
    const after = await store.usage.consume('u1');
    expect(after).toMatchObject({ allowed: true, daily: { used: 1 }, monthly: { used: 1 }, totalQueries: 6 });

    const raw = parseJsonText(await readFile(path.join(dataDir, 'usage/u1/usage.json'), 'utf8'));
    expect(raw).toEqual({
      user_id: 'u1',
      daily_count: 1,
      monthly_count: 1,
      last_daily_reset: '2025-02-01',
      last_monthly_reset: '2025-02-01',
      total_queries: 6,
      tier: 'free',
    });
    await store.close();
  });

  it('a refused consume changes nothing on disk', async () => {
    const store = open({ tierLimits: LIMITS });
    await store.usage.consume('u1', 3);
    const file = path.join(dataDir, 'usage/u1/usage.json');
    const before = await stat(file, { bigint: true });
    const refused = await store.usage.consume('u1');
    expect(refused).toMatchObject({ allowed: false, daily: { used: 3, remaining: 0 } });
    expect((await stat(file, { bigint: true })).mtimeNs).toBe(before.mtimeNs);
    await store.close();
  });

  it('get of an unknown user is a fresh free-tier status and writes nothing', async () => {
    const store = open({ tierLimits: LIMITS });
    const status = await store.usage.get('newcomer');
    expect(status).toMatchObject({ userId: 'newcomer', tier: 'free', daily: { used: 0, limit: 3, remaining: 3 }, totalQueries: 0 });
    expect(await walk(root)).toEqual([]);
    await store.close();
  });

  it('reads seed usage files with datetime resets, normalises the month, and keeps the tier', async () => {
    const file = path.join(dataDir, 'usage/u1/usage.json');
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(
      file,
      '{"user_id": "u1", "daily_count": 2, "monthly_count": 40, "last_daily_reset": "2025-03-14T08:00:00.123456", ' +
        '"last_monthly_reset": "2025-03-02", "total_queries": 400, "tier": "pro"}',
    );
    const time = fakeClock('2025-03-14T20:00:00.000Z');
    const store = open({ clock: time.clock });
    expect(await store.usage.get('u1')).toMatchObject({ tier: 'pro', daily: { used: 2, limit: 100 }, monthly: { used: 40, limit: 3000 } });
    time.set('2025-03-15T01:00:00.000Z');
    expect(await store.usage.consume('u1')).toMatchObject({ allowed: true, daily: { used: 1 }, monthly: { used: 41 }, totalQueries: 401 });
    expect(parseJsonText(await readFile(file, 'utf8'))).toMatchObject({
      last_daily_reset: '2025-03-15T00:00:00', // a datetime stays a datetime, as the app wrote it
      last_monthly_reset: '2025-03-01',
    });
    await store.close();
  });

  it('setTier keeps counts and changes limits; an unknown tier is UNPROCESSABLE', async () => {
    const store = open({ tierLimits: LIMITS });
    await store.usage.consume('u1', 3);
    expect(await store.usage.setTier('u1', 'enterprise')).toMatchObject({
      tier: 'enterprise',
      daily: { used: 3, limit: null, remaining: null },
    });
    expect((await store.usage.consume('u1', 50)).allowed).toBe(true);
    expect((await rejection(store.usage.setTier('u1', 'gold' as 'pro'))).code).toBe('UNPROCESSABLE');
    await store.close();
  });
});

describe('JSON store: locks, health and close', () => {
  it('breaks a lock file left by a dead process', async () => {
    const file = path.join(root, 'doc.json');
    // pid 2^22 + 1 is above Linux's pid_max, so it cannot be alive.
    await writeFile(`${file}.lock`, JSON.stringify({ pid: 4194305, host: os.hostname(), token: 't', acquiredAt: '' }));
    await update(file, () => ({ next: { n: 1 }, result: undefined }), { waitMs: 2000 });
    expect(await readJsonFile(file)).toEqual({ n: 1 });
    expect(await readdir(root)).toEqual(['doc.json']);
  });

  it('breaks an old lock file that nobody refreshes, even with a live pid', async () => {
    const file = path.join(root, 'doc.json');
    await writeFile(`${file}.lock`, JSON.stringify({ pid: process.pid, host: os.hostname(), token: 't', acquiredAt: '' }));
    const started = Date.now();
    await update(file, () => ({ next: { n: 2 }, result: undefined }), { waitMs: 5000, staleMs: 300 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(await readJsonFile(file)).toEqual({ n: 2 });
  });

  it('gives up with UNAVAILABLE naming the lock file when a live holder keeps it', async () => {
    const file = path.join(root, 'doc.json');
    let release!: () => void;
    const held = withLockFile(file, () => new Promise<void>((resolve) => (release = resolve)), { staleMs: 200 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    // Another "process" (the keyed mutex is bypassed by calling withLockFile directly) waits, bounded.
    const started = Date.now();
    const error = await rejection(withLockFile(file, async () => undefined, { waitMs: 600, staleMs: 200 }));
    expect(error.code).toBe('UNAVAILABLE');
    expect(error.message).toContain(`${file}.lock`);
    expect(error.message).toContain(`pid ${process.pid}`);
    expect(Date.now() - started).toBeLessThan(3000); // the heartbeat kept it fresh past staleMs, and the wait was bounded
    release();
    await held;
    expect(await readdir(root)).toEqual([]); // released lock files are removed
  });

  it('health() is ok for a writable DATA_DIR and not ok when it cannot be created', async () => {
    expect(await open().health()).toEqual({ ok: true, backend: 'json', mode: 'json' });
    await writeFile(path.join(root, 'plain-file'), '');
    const broken = createJsonStore({ dataDir: path.join(root, 'plain-file', 'data'), tierLimits: DEFAULT_TIER_LIMITS });
    const health = await broken.health();
    expect(health).toMatchObject({ ok: false, backend: 'json', mode: 'json' });
    expect(health.error).toContain('plain-file');
  });

  it('close() waits for in-flight writes, then refuses new calls', async () => {
    const store = open();
    await store.conversations.create('u1', { id: 'c1' });
    const writes = Array.from({ length: 20 }, (_, i) => store.conversations.addUserMessage('u1', 'c1', `m${i}`));
    await store.close();
    const settled = await Promise.allSettled(writes);
    expect(settled.every((s) => s.status === 'fulfilled')).toBe(true);
    const reopened = open();
    expect((await reopened.conversations.get('u1', 'c1')).messageCount).toBe(20);
    expect((await rejection(store.conversations.get('u1', 'c1'))).code).toBe('UNAVAILABLE');
    await reopened.close();
  });

  it('a user cannot reach another user’s conversation: NOT_FOUND', async () => {
    const store = open();
    await store.conversations.create('alice', { id: 'c1', title: 'secret' });
    for (const attempt of [
      store.conversations.get('bob', 'c1'),
      store.conversations.addUserMessage('bob', 'c1', 'x'),
      store.conversations.updateTitle('bob', 'c1', 'x'),
      store.conversations.delete('bob', 'c1'),
    ]) {
      expect((await rejection(attempt)).code).toBe('NOT_FOUND');
    }
    expect((await store.conversations.list('bob')).items).toEqual([]);
    expect(await store.conversations.search('bob', 'secret')).toEqual([]);
    expect((await store.conversations.get('alice', 'c1')).title).toBe('secret');
    await store.close();
  });
});
