import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TIER_LIMITS, type TierLimits } from '../src/config.ts';
import { createPostgresStore, listQuery } from '../src/store/postgres/index.ts';
import type { Clock, Store } from '../src/store/types.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { expectCode } from './helpers/expect.ts';

/**
 * PostgreSQL-specific guarantees of the Store (issue 3 deliverables 3, 6, 7),
 * on a real server: quotas exact under concurrency (one pool and four
 * processes), gapless message positions, period resets, index use, lossless
 * values, literal treatment of hostile strings. The behaviour every backend
 * shares is in the contract suite.
 */

let testDb: TestDatabase;
let store: Store;

beforeAll(async () => {
  testDb = await createTestDatabase({ prefix: 'pgstore' });
  store = createPostgresStore({ db: testDb.db, tierLimits: DEFAULT_TIER_LIMITS });
});
afterAll(async () => {
  await store?.close();
  await testDb?.drop();
});

let seq = 0;
const uniqueUser = (label: string) => `${label}-${process.pid}-${++seq}`;

/** A store on the same database with an injected clock and/or other limits. */
function storeWith(options: { clock?: Clock; tierLimits?: TierLimits }): Store {
  return createPostgresStore({ db: testDb.db, tierLimits: options.tierLimits ?? DEFAULT_TIER_LIMITS, clock: options.clock });
}

/** A clock the test moves by assigning `clock.now`. */
function movableClock(start: string): { clock: Clock; set(iso: string): void } {
  let now = new Date(start);
  return {
    clock: () => now,
    set: (iso: string) => {
      now = new Date(iso);
    },
  };
}

const WORKER = path.join(import.meta.dirname, 'fixtures', 'pg-store-worker.ts');

/** Start `processes` workers, release them together, and collect their results. */
async function runWorkers(processes: number, args: string[]): Promise<number[][]> {
  const children: ChildProcessWithoutNullStreams[] = [];
  const outputs: Promise<string>[] = [];
  const ready: Promise<void>[] = [];
  for (let i = 0; i < processes; i++) {
    const child = spawn(process.execPath, [WORKER, ...args], {
      env: { ...process.env, PGFERRY_TEST_URL: testDb.url },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    ready.push(
      new Promise((resolve, reject) => {
        child.stdout.on('data', (chunk) => {
          stdout += chunk;
          if (stdout.startsWith('ready\n')) resolve();
        });
        child.on('exit', (code) => reject(new Error(`worker exited ${code} before ready: ${stderr}`)));
      }),
    );
    outputs.push(
      once(child, 'exit').then(([code]) => {
        if (code !== 0) throw new Error(`worker exited with ${code}: ${stderr}`);
        return stdout;
      }),
    );
  }
  await Promise.all(ready);
  for (const child of children) child.stdin.end('go\n');
  const texts = await Promise.all(outputs);
  return texts.map((text) => (JSON.parse(text.split('\n')[1]!) as { results: number[] }).results);
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('usage quotas', () => {
  it('200 concurrent consume calls at a daily limit of 10 allow exactly 10 (new user, first row raced)', async () => {
    const userId = uniqueUser('burst');
    const results = await Promise.all(range(200).map(() => store.usage.consume(userId)));
    expect(results.filter((r) => r.allowed)).toHaveLength(10);
    // Refused calls report the exact state they were refused at.
    for (const refused of results.filter((r) => !r.allowed)) {
      expect(refused.daily).toMatchObject({ used: 10, limit: 10, remaining: 0 });
    }
    const allowedUsed = results
      .filter((r) => r.allowed)
      .map((r) => r.daily.used)
      .sort((a, b) => a - b);
    expect(allowedUsed).toEqual(range(10).map((i) => i + 1));
    const [row] = await testDb.db.sql`select daily_used, monthly_used, total_queries from usage where user_id = ${userId}`;
    expect(row).toMatchObject({ daily_used: 10, monthly_used: 10 });
    expect(Number(row!.total_queries)).toBe(10);
  });

  it('200 concurrent consume calls on an existing row allow exactly the remainder', async () => {
    const userId = uniqueUser('existing');
    await store.usage.consume(userId, 3);
    const results = await Promise.all(range(200).map(() => store.usage.consume(userId)));
    expect(results.filter((r) => r.allowed)).toHaveLength(7);
    expect((await store.usage.get(userId)).daily.used).toBe(10);
  });

  it('4 processes consuming at once allow exactly 10 in total', async () => {
    const userId = uniqueUser('procs');
    const perProcess = await runWorkers(4, ['consume', userId, '-', '50']);
    expect(perProcess.flat()).toHaveLength(200);
    expect(perProcess.flat().reduce((a, b) => a + b, 0)).toBe(10);
    const status = await store.usage.get(userId);
    expect(status.daily.used).toBe(10);
    expect(status.totalQueries).toBe(10);
  });

  it('consume(n) is all or nothing', async () => {
    const userId = uniqueUser('bulk');
    expect((await store.usage.consume(userId, 11)).allowed).toBe(false);
    expect((await store.usage.get(userId)).daily.used).toBe(0);
    expect((await store.usage.consume(userId, 8)).allowed).toBe(true);
    const refused = await store.usage.consume(userId, 3);
    expect(refused.allowed).toBe(false);
    expect(refused.daily).toMatchObject({ used: 8, remaining: 2 });
    expect((await store.usage.consume(userId, 2)).daily).toMatchObject({ used: 10, remaining: 0 });
  });

  it('get() of an unknown user is a fresh free status and inserts nothing', async () => {
    const userId = uniqueUser('ghost');
    const status = await store.usage.get(userId);
    expect(status).toMatchObject({
      userId,
      tier: 'free',
      daily: { used: 0, limit: 10, remaining: 10 },
      monthly: { used: 0, limit: 100, remaining: 100 },
      totalQueries: 0,
    });
    const rows = await testDb.db.sql`select 1 from usage where user_id = ${userId}`;
    expect(rows).toHaveLength(0);
  });

  it('resets at the UTC day and month boundaries (injected clock)', async () => {
    const userId = uniqueUser('clock');
    const time = movableClock('2025-01-31T23:59:59.999Z');
    const clocked = storeWith({ clock: time.clock });
    for (let i = 0; i < 10; i++) expect((await clocked.usage.consume(userId)).allowed).toBe(true);
    const refused = await clocked.usage.consume(userId);
    expect(refused.allowed).toBe(false);
    expect(refused.daily.resetsAt).toBe('2025-02-01T00:00:00.000Z');
    expect(refused.monthly.resetsAt).toBe('2025-02-01T00:00:00.000Z');

    time.set('2025-02-01T00:00:00.000Z'); // new day and new month
    const fresh = await clocked.usage.get(userId);
    expect(fresh.daily.used).toBe(0);
    expect(fresh.monthly.used).toBe(0);
    expect(fresh.totalQueries).toBe(10);
    const allowed = await clocked.usage.consume(userId);
    expect(allowed.allowed).toBe(true);
    expect(allowed.daily).toMatchObject({ used: 1, resetsAt: '2025-02-02T00:00:00.000Z' });
    expect(allowed.monthly).toMatchObject({ used: 1, resetsAt: '2025-03-01T00:00:00.000Z' });

    time.set('2025-02-01T23:59:59.999Z'); // same day
    for (let i = 0; i < 9; i++) await clocked.usage.consume(userId);
    expect((await clocked.usage.consume(userId)).allowed).toBe(false);
    time.set('2025-02-02T00:00:00.000Z'); // new day, same month
    const nextDay = await clocked.usage.consume(userId);
    expect(nextDay.allowed).toBe(true);
    expect(nextDay.daily.used).toBe(1);
    expect(nextDay.monthly.used).toBe(11);
    const [row] = await testDb.db.sql`
      select last_reset_daily::text as d, last_reset_monthly::text as m from usage where user_id = ${userId}`;
    expect(row).toEqual({ d: '2025-02-02', m: '2025-02-01' });
  });

  it('resets when the stored period is older than the database clock', async () => {
    const userId = uniqueUser('dbclock');
    for (let i = 0; i < 10; i++) await store.usage.consume(userId);
    expect((await store.usage.consume(userId)).allowed).toBe(false);

    // Yesterday's counts (by the database's own UTC clock).
    await testDb.db.sql`
      update usage set last_reset_daily = (now() at time zone 'utc')::date - 1 where user_id = ${userId}`;
    const nextDay = await store.usage.consume(userId);
    expect(nextDay.allowed).toBe(true);
    expect(nextDay.daily.used).toBe(1);
    expect(nextDay.monthly.used).toBe(11);

    // Last month's counts.
    await testDb.db.sql`
      update usage set last_reset_monthly = (date_trunc('month', now() at time zone 'utc') - interval '1 month')::date,
                       monthly_used = 100
       where user_id = ${userId}`;
    const nextMonth = await store.usage.consume(userId);
    expect(nextMonth.allowed).toBe(true);
    expect(nextMonth.monthly.used).toBe(1);
    const [row] = await testDb.db.sql`
      select last_reset_daily = (now() at time zone 'utc')::date as day_ok,
             last_reset_monthly = date_trunc('month', now() at time zone 'utc')::date as month_ok
        from usage where user_id = ${userId}`;
    expect(row).toEqual({ day_ok: true, month_ok: true });
  });

  it('enforces the monthly limit across days', async () => {
    const userId = uniqueUser('monthly');
    const time = movableClock('2025-03-01T12:00:00Z');
    const limited = storeWith({
      clock: time.clock,
      tierLimits: { ...DEFAULT_TIER_LIMITS, free: { daily: 10, monthly: 15 } },
    });
    expect((await limited.usage.consume(userId, 10)).allowed).toBe(true);
    time.set('2025-03-02T12:00:00Z');
    expect((await limited.usage.consume(userId, 5)).allowed).toBe(true);
    const refused = await limited.usage.consume(userId);
    expect(refused.allowed).toBe(false);
    expect(refused.daily).toMatchObject({ used: 5, remaining: 5 });
    expect(refused.monthly).toMatchObject({ used: 15, limit: 15, remaining: 0 });
    time.set('2025-04-01T00:00:00Z');
    expect((await limited.usage.consume(userId)).allowed).toBe(true);
  });

  it('unlimited tiers never refuse; setTier upserts and applies that tier’s limits', async () => {
    const userId = uniqueUser('ent');
    const status = await store.usage.setTier(userId, 'enterprise');
    expect(status).toMatchObject({ tier: 'enterprise', daily: { limit: null, remaining: null } });
    const results = await Promise.all(range(50).map(() => store.usage.consume(userId, 1000)));
    expect(results.every((r) => r.allowed)).toBe(true);
    expect((await store.usage.get(userId)).daily).toMatchObject({ used: 50_000, limit: null, remaining: null });

    await store.usage.setTier(userId, 'pro');
    const pro = await store.usage.consume(userId);
    expect(pro.allowed).toBe(false);
    expect(pro.daily).toMatchObject({ used: 50_000, limit: 100, remaining: 0 });
    await expectCode(store.usage.setTier(userId, 'platinum' as never), 'UNPROCESSABLE');
  });

  it('rejects bad input before any query', async () => {
    const before = testDb.db.counters.queries;
    await expectCode(store.usage.consume('../etc', 1), 'INVALID_INPUT');
    await expectCode(store.usage.consume('ok-user', 0), 'INVALID_INPUT');
    await expectCode(store.usage.consume('ok-user', 1.5), 'INVALID_INPUT');
    await expectCode(store.usage.get("x'; drop table usage; --"), 'INVALID_INPUT');
    expect(testDb.db.counters.queries).toBe(before);
  });
});

describe('conversations', () => {
  it('200 concurrent appends get unique, gapless positions', async () => {
    const userId = uniqueUser('append');
    const { id } = await store.conversations.create(userId);
    const positions = await Promise.all(
      range(200).map((i) =>
        i % 2 === 0
          ? store.conversations.addUserMessage(userId, id, `message ${i}`).then((m) => m.position)
          : store.conversations.addAssistantMessage(userId, id, { stage1: [i], stage2: [], stage3: { i } }).then((m) => m.position),
      ),
    );
    expect([...positions].sort((a, b) => a - b)).toEqual(range(200));
    const conversation = await store.conversations.get(userId, id);
    expect(conversation.messageCount).toBe(200);
    expect(conversation.messages.map((m) => m.position)).toEqual(range(200));
  });

  it('4 processes appending to one conversation at once keep positions unique and gapless', async () => {
    const userId = uniqueUser('procappend');
    const { id } = await store.conversations.create(userId);
    const perProcess = await runWorkers(4, ['append', userId, id, '50']);
    expect(
      perProcess
        .flat()
        .slice()
        .sort((a, b) => a - b),
    ).toEqual(range(200));
    const [row] = await testDb.db.sql`
      select c.message_count, count(m.*)::int as n, min(m.position) as lo, max(m.position) as hi, count(distinct m.position)::int as distinct_positions
        from conversations c join messages m on m.conversation_id = c.id
       where c.id = ${id} group by c.message_count`;
    expect(row).toEqual({ message_count: 200, n: 200, lo: 0, hi: 199, distinct_positions: 200 });
  });

  it('appending to another user’s conversation is NOT_FOUND and changes nothing', async () => {
    const owner = uniqueUser('owner');
    const other = uniqueUser('other');
    const { id } = await store.conversations.create(owner, { title: 'mine' });
    await expectCode(store.conversations.addUserMessage(other, id, 'hi'), 'NOT_FOUND');
    await expectCode(store.conversations.addAssistantMessage(other, id, { stage1: [], stage2: [], stage3: null }), 'NOT_FOUND');
    await expectCode(store.conversations.updateTitle(other, id, 'yours'), 'NOT_FOUND');
    await expectCode(store.conversations.delete(other, id), 'NOT_FOUND');
    await expectCode(store.conversations.get(other, id), 'NOT_FOUND');
    expect((await store.conversations.list(other)).items).toEqual([]);
    expect(await store.conversations.search(other, 'mine')).toEqual([]);
    const mine = await store.conversations.get(owner, id);
    expect(mine).toMatchObject({ title: 'mine', messageCount: 0, messages: [] });
  });

  it('create with an existing id is CONFLICT; delete cascades to messages', async () => {
    const userId = uniqueUser('cascade');
    const { id } = await store.conversations.create(userId, { id: `conv-${seq}` });
    await expectCode(store.conversations.create(userId, { id }), 'CONFLICT');
    for (let i = 0; i < 5; i++) await store.conversations.addUserMessage(userId, id, `m${i}`);
    await store.conversations.delete(userId, id);
    const [row] = await testDb.db.sql`select count(*)::int as n from messages where conversation_id = ${id}`;
    expect(row!.n).toBe(0);
    await expectCode(store.conversations.get(userId, id), 'NOT_FOUND');
    await expectCode(store.conversations.delete(userId, id), 'NOT_FOUND');
  });

  it('pages messages with a cursor', async () => {
    const userId = uniqueUser('msgpages');
    const { id } = await store.conversations.create(userId);
    for (let i = 0; i < 7; i++) await store.conversations.addUserMessage(userId, id, `m${i}`);
    const seen: number[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await store.conversations.get(userId, id, { messagesLimit: 3, messagesCursor: cursor });
      seen.push(...page.messages.map((m) => m.position));
      cursor = page.nextMessagesCursor ?? undefined;
      pages++;
    } while (cursor);
    expect(seen).toEqual(range(7));
    expect(pages).toBe(3);
    await expectCode(store.conversations.get(userId, id, { messagesCursor: 'bm90LWEtY3Vyc29y' }), 'INVALID_INPUT');
  });

  it('list() neither skips nor repeats rows that share a millisecond, nor rows tied on updated_at', async () => {
    const userId = uniqueUser('keyset');
    // 30 rows 1 µs apart (10 per millisecond) plus 10 rows with identical updated_at.
    await testDb.db.sql`
      insert into conversations (id, user_id, title, created_at, updated_at)
      select 'k' || lpad(g::text, 3, '0'), ${userId}, 't' || g,
             timestamptz '2025-05-05 10:00:00+00',
             case when g <= 30 then timestamptz '2025-05-05 10:00:00.000100+00' + (g || ' microseconds')::interval
                  else timestamptz '2025-05-05 09:00:00+00' end
        from generate_series(1, 40) g`;
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await store.conversations.list(userId, { limit: 3, cursor });
      seen.push(...page.items.map((item) => item.id));
      cursor = page.nextCursor ?? undefined;
      // Newer rows inserted mid-walk sort before the cursor and must not disturb it.
      if (seen.length === 9) await store.conversations.create(userId, { id: `k-late-${seq}` });
    } while (cursor);
    const expected = [
      ...range(30).map((i) => `k${String(30 - i).padStart(3, '0')}`),
      ...range(10).map((i) => `k${String(40 - i).padStart(3, '0')}`),
    ];
    expect(seen).toEqual(expected);
    await expectCode(store.conversations.list(userId, { cursor: 'garbage' }), 'INVALID_INPUT');
    const forged = Buffer.from(JSON.stringify(['2025-13-45T99:00:00.000000Z', 'k001'])).toString('base64url');
    await expectCode(store.conversations.list(userId, { cursor: forged }), 'INVALID_INPUT');
    await expectCode(store.conversations.list(userId, { limit: 0 }), 'INVALID_INPUT');
    expect((await store.conversations.list(userId, { limit: 1000 })).items).toHaveLength(41);
  });

  it('list() runs as an index scan on conversations_user_updated_idx, without a sort', async () => {
    await testDb.db.sql`
      insert into conversations (id, user_id, title, updated_at)
      select 'plan-' || g, 'plan-user-' || (g % 100), 'title', now() - (g || ' seconds')::interval
        from generate_series(1, 20000) g`;
    await testDb.db.sql`analyze conversations`;
    const [last] = await listQuery(testDb.db.sql, 'plan-user-7', null, 5);
    const plans = await testDb.db.transaction('explain', async (tx) => {
      // The planner would choose the index anyway at this size; this only rules out flakiness.
      await tx`set local enable_seqscan = off`;
      const first = await tx`explain (format json) ${listQuery(tx as never, 'plan-user-7', null, 50)}`;
      const next =
        await tx`explain (format json) ${listQuery(tx as never, 'plan-user-7', { updatedKey: last!.updated_key, id: last!.id }, 50)}`;
      return [first, next].map((rows) => JSON.stringify(rows[0]!['QUERY PLAN']));
    });
    for (const plan of plans) {
      expect(plan).toContain('"Index Name":"conversations_user_updated_idx"');
      expect(plan).not.toContain('"Node Type":"Sort"');
      expect(plan).not.toContain('Bitmap');
    }
    expect(plans[1]).toMatch(/"Index Cond":"\(\(user_id = [^)]*\) AND \(ROW\(updated_at, id\) < ROW\(/);
  });

  it('round-trips NaN and ±Infinity in stage data, and a 1 MB message', async () => {
    const userId = uniqueUser('values');
    const { id } = await store.conversations.create(userId);
    const stage1 = [{ model: 'a', score: Number.NaN, nested: [Number.POSITIVE_INFINITY, -0.5, { deep: Number.NEGATIVE_INFINITY }] }];
    const stage3 = { model: 'chair', response: 'ok', confidence: Number.NaN };
    const metadata = { aggregate_rankings: [{ average_rank: Number.POSITIVE_INFINITY }], emoji: '🚢 ünïcödé' };
    await store.conversations.addAssistantMessage(userId, id, { stage1, stage2: [], stage3, metadata });
    const big = 'x'.repeat(1024 * 1024 - 5) + '🚢end';
    await store.conversations.addUserMessage(userId, id, big);
    const { messages } = await store.conversations.get(userId, id);
    expect(messages[0]).toMatchObject({ role: 'assistant', stage1, stage2: [], stage3, metadata });
    expect(Number.isNaN((messages[0] as { stage3: { confidence: number } }).stage3.confidence)).toBe(true);
    expect(messages[1]).toMatchObject({ role: 'user', content: big });
    // Stored as tagged JSONB, not as strings or nulls.
    const [row] = await testDb.db.sql`
      select stage3_data -> 'confidence' as c, jsonb_typeof(stage1_data) as t from messages where conversation_id = ${id} and position = 0`;
    expect(row).toEqual({ c: { '$pgferry:float': 'NaN' }, t: 'array' });
  });

  it('stores SQL-injection strings literally and searches them literally', async () => {
    const userId = uniqueUser('inject');
    const hostile = ["'; drop table conversations; --", 'Robert"); DELETE FROM messages; --', "' or '1'='1", '$1 $$ \\x00 %_ \\'];
    const ids: string[] = [];
    for (const text of hostile) {
      const c = await store.conversations.create(userId, { title: text });
      await store.conversations.addUserMessage(userId, c.id, `body ${text}`);
      ids.push(c.id);
    }
    for (const [i, text] of hostile.entries()) {
      const c = await store.conversations.get(userId, ids[i]!);
      expect(c.title).toBe(text);
      expect(c.messages[0]).toMatchObject({ content: `body ${text}` });
    }
    expect((await store.conversations.search(userId, "' or '1'='1")).map((c) => c.id)).toEqual([ids[2]]);
    expect(await store.conversations.search(userId, "x' or 1=1 --")).toEqual([]);
    // LIKE metacharacters are literal: '%' and '_' match only themselves.
    expect((await store.conversations.search(userId, '%_')).map((c) => c.id)).toEqual([ids[3]]);
    expect(await store.conversations.search(userId, '_%')).toEqual([]);
    expect((await store.conversations.search(userId, '\\x00')).map((c) => c.id)).toEqual([ids[3]]);
    const [row] = await testDb.db.sql`select to_regclass('conversations') is not null as ok`;
    expect(row!.ok).toBe(true);
  });

  it('search is case-insensitive on titles and user messages only, newest first, capped', async () => {
    const userId = uniqueUser('search');
    const a = await store.conversations.create(userId, { title: 'Über Straße' });
    const b = await store.conversations.create(userId, { title: 'other' });
    await store.conversations.addUserMessage(userId, b.id, 'I said ÜBER things');
    const c = await store.conversations.create(userId, { title: 'assistant only' });
    await store.conversations.addAssistantMessage(userId, c.id, { stage1: ['über'], stage2: [], stage3: { response: 'über' } });
    expect((await store.conversations.search(userId, 'über')).map((x) => x.id)).toEqual([b.id, a.id]);
    expect(await store.conversations.search(userId, 'über', { limit: 1 })).toHaveLength(1);
    await expectCode(store.conversations.search(userId, 'x', { limit: -1 }), 'INVALID_INPUT');
    await expectCode(store.conversations.search(userId, ''), 'INVALID_INPUT');
    await expectCode(store.conversations.search(userId, 'x'.repeat(1001)), 'INVALID_INPUT');
  });

  it('text PostgreSQL cannot store (NUL) is INVALID_INPUT, not a server error', async () => {
    const userId = uniqueUser('nul');
    const { id } = await store.conversations.create(userId);
    await expectCode(store.conversations.addUserMessage(userId, id, 'a\u0000b'), 'INVALID_INPUT');
    await expectCode(
      store.conversations.addAssistantMessage(userId, id, { stage1: ['a\u0000b'], stage2: [], stage3: null }),
      'INVALID_INPUT',
    );
    expect((await store.conversations.get(userId, id)).messageCount).toBe(0);
  });

  it('rejects hostile ids before any query', async () => {
    const before = testDb.db.counters.queries;
    await expectCode(store.conversations.get('user', '../../etc/passwd'), 'INVALID_INPUT');
    await expectCode(store.conversations.create('user', { id: "x'; drop table conversations; --" }), 'INVALID_INPUT');
    await expectCode(store.conversations.list('a/b'), 'INVALID_INPUT');
    await expectCode(store.conversations.addUserMessage('user', 'c1', ''), 'INVALID_INPUT');
    expect(testDb.db.counters.queries).toBe(before);
  });
});

describe('store', () => {
  it('reports health and closes the database only when it owns it', async () => {
    expect(await store.health()).toEqual({ ok: true, backend: 'postgres', mode: 'postgres' });
    const other = await createTestDatabase({ prefix: 'pgstore_own' });
    try {
      const owned = createPostgresStore({ db: other.db, tierLimits: DEFAULT_TIER_LIMITS, ownsDb: true });
      await owned.close();
      const health = await owned.health();
      expect(health.ok).toBe(false);
      expect(health.error).toBeTruthy();
    } finally {
      await other.drop();
    }
  });
});
