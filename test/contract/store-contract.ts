import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_TIER_LIMITS, type TierLimits } from '../../src/config.ts';
import type { ConversationSummary } from '../../src/domain/conversations.ts';
import { isPgFerryError } from '../../src/errors.ts';
import type { Store } from '../../src/store/types.ts';
import { expectCode } from '../helpers/expect.ts';
import { TestClock } from './clock.ts';
import { runFormsContract } from './forms-contract.ts';

/**
 * The one Store contract (STYLE.md: unstorage's testDriver). Every backend
 * and mode runs exactly these tests through `runStoreContract`.
 */

export interface ContractHarness {
  store: Store;
  cleanup: () => Promise<void>;
}

export type HarnessFactory = (options: { clock: TestClock; tierLimits: TierLimits }) => Promise<ContractHarness>;

export const CONTRACT_LIMITS: TierLimits = { ...DEFAULT_TIER_LIMITS, free: { daily: 10, monthly: 100 } };

let userCounter = 0;
const newUser = (label = 'u') => `${label}-${process.pid}-${++userCounter}-${Math.random().toString(36).slice(2, 8)}`;

const sampleAssistant = {
  stage1: [
    { model: 'openai/gpt-4o', response: 'Answer A' },
    { model: 'google/gemini', response: 'Answer B' },
  ],
  stage2: [{ model: 'openai/gpt-4o', ranking: 'FINAL RANKING: 1. Response B', parsed_ranking: ['Response B', 'Response A'] }],
  stage3: { model: 'google/gemini', response: 'Final answer' },
  metadata: {
    label_to_model: { 'Response A': 'openai/gpt-4o', 'Response B': 'google/gemini' },
    aggregate_rankings: [{ model: 'google/gemini', average_rank: 1.5, rankings_count: 2 }],
  },
};

/** A cursor as the Store encodes them: base64url JSON. */
export const cursorOf = (parts: unknown): string => Buffer.from(JSON.stringify(parts)).toString('base64url');

/** List cursors no backend may accept: shape, calendar, year 0, millisecond precision, bad id. */
export const MALFORMED_LIST_CURSORS = [
  'not-a-cursor',
  '',
  cursorOf([]),
  cursorOf({ updatedAt: '2025-01-01T00:00:00.000000Z', id: 'a' }),
  cursorOf(['2025-01-01T00:00:00.000000Z']),
  cursorOf(['2025-01-01T00:00:00.000000Z', 'a', 'extra']),
  cursorOf(['2025-13-45T99:00:00.000000Z', 'a']),
  cursorOf(['2025-02-30T00:00:00.000000Z', 'a']),
  cursorOf(['0000-01-01T00:00:00.000000Z', 'a']),
  cursorOf(['2025-01-01T00:00:00.000Z', 'a']),
  cursorOf(['2025-01-01 00:00:00.000000+00', 'a']),
  cursorOf(['2025-01-01T00:00:00.000000Z', '../etc']),
  cursorOf(['2025-01-01T00:00:00.000000Z', 7]),
  cursorOf([1735689600000, 'a']),
];

export const MALFORMED_MESSAGES_CURSORS = [
  'garbage',
  cursorOf([]),
  cursorOf([-1]),
  cursorOf([1.5]),
  cursorOf(['3']),
  cursorOf([2 ** 31]),
  cursorOf([1, 2]),
];

/** The one error every backend gives for a malformed cursor. */
const INVALID_CURSOR = {
  code: 'INVALID_INPUT',
  message: 'invalid cursor: pass back the value exactly as returned',
  details: { field: 'cursor' },
};
const INVALID_MESSAGES_CURSOR = {
  ...INVALID_CURSOR,
  message: INVALID_CURSOR.message.replace('cursor', 'messagesCursor'),
  details: { field: 'messagesCursor' },
};

/** The PgFerryError a call fails with (code, message, details), for comparing across backends. */
async function failureOf(promise: Promise<unknown>): Promise<{ code: string; message: string; details: unknown }> {
  try {
    await promise;
  } catch (error) {
    if (!isPgFerryError(error)) throw error;
    return { code: error.code, message: error.message, details: error.details };
  }
  throw new Error('expected a PgFerryError, but the call succeeded');
}

export function runStoreContract(name: string, factory: HarnessFactory): void {
  describe(`Store contract: ${name}`, () => {
    const clock = new TestClock();
    let harness: ContractHarness;
    let store: Store;

    beforeAll(async () => {
      harness = await factory({ clock, tierLimits: CONTRACT_LIMITS });
      store = harness.store;
    });
    afterAll(async () => {
      await harness?.store.close();
      await harness?.cleanup();
    });
    beforeEach(() => clock.reset());

    describe('conversations', () => {
      it('creates, gets and lists a conversation with defaults', async () => {
        const user = newUser();
        const created = await store.conversations.create(user);
        expect(created.id).toMatch(/^[0-9a-f-]{36}$/);
        expect(created.title).toBe('New Conversation');
        expect(created.messages).toEqual([]);
        expect(created.messageCount).toBe(0);
        expect(new Date(created.createdAt).toString()).not.toBe('Invalid Date');
        const got = await store.conversations.get(user, created.id);
        expect(got).toMatchObject({ id: created.id, userId: user, title: 'New Conversation', messageCount: 0, messages: [] });
        const page = await store.conversations.list(user);
        expect(page.items.map((c) => c.id)).toEqual([created.id]);
        expect(page.nextCursor).toBeNull();
      });

      it('accepts a caller-chosen id and title; a second create with that id is CONFLICT', async () => {
        const user = newUser();
        const id = `conv-${Date.now()}-${Math.random().toString(36).slice(2)}`;
        const created = await store.conversations.create(user, { id, title: 'Mine' });
        expect(created).toMatchObject({ id, title: 'Mine' });
        await expectCode(store.conversations.create(user, { id }), 'CONFLICT');
      });

      it('appends user and assistant messages in order with positions and counts', async () => {
        const user = newUser();
        const { id } = await store.conversations.create(user);
        const m0 = await store.conversations.addUserMessage(user, id, 'Hello');
        const m1 = await store.conversations.addAssistantMessage(user, id, sampleAssistant);
        const m2 = await store.conversations.addAssistantMessage(user, id, {
          stage1: sampleAssistant.stage1,
          stage2: [],
          stage3: sampleAssistant.stage3,
        });
        expect([m0.position, m1.position, m2.position]).toEqual([0, 1, 2]);
        const got = await store.conversations.get(user, id);
        expect(got.messageCount).toBe(3);
        expect(got.messages).toHaveLength(3);
        expect(got.messages[0]).toMatchObject({ role: 'user', content: 'Hello', position: 0 });
        expect(got.messages[1]).toMatchObject({ role: 'assistant', position: 1, ...sampleAssistant });
        expect(got.messages[2]?.role).toBe('assistant');
        expect('metadata' in (got.messages[2] as object) && (got.messages[2] as { metadata?: unknown }).metadata !== undefined).toBe(false);
        const [summary] = (await store.conversations.list(user)).items;
        expect(summary?.messageCount).toBe(3);
        expect(Date.parse(summary!.updatedAt)).toBeGreaterThanOrEqual(Date.parse(summary!.createdAt));
      });

      it('pages messages oldest first with a cursor', async () => {
        const user = newUser();
        const { id } = await store.conversations.create(user);
        for (let i = 0; i < 25; i++) await store.conversations.addUserMessage(user, id, `m${i}`);
        const seen: string[] = [];
        let cursor: string | undefined;
        do {
          const page = await store.conversations.get(user, id, { messagesLimit: 10, messagesCursor: cursor });
          expect(page.messages.length).toBeLessThanOrEqual(10);
          seen.push(...page.messages.map((m) => (m.role === 'user' ? m.content : '')));
          cursor = page.nextMessagesCursor ?? undefined;
        } while (cursor);
        expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => `m${i}`));
      });

      it('renames and deletes; messages go with the conversation', async () => {
        const user = newUser();
        const { id } = await store.conversations.create(user);
        await store.conversations.addUserMessage(user, id, 'x');
        const renamed = await store.conversations.updateTitle(user, id, 'Renamed ✓');
        expect(renamed.title).toBe('Renamed ✓');
        expect((await store.conversations.get(user, id)).title).toBe('Renamed ✓');
        await store.conversations.delete(user, id);
        await expectCode(store.conversations.get(user, id), 'NOT_FOUND');
        await expectCode(store.conversations.delete(user, id), 'NOT_FOUND');
        expect((await store.conversations.list(user)).items).toEqual([]);
      });

      it('lists newest-updated first and pages without skipping or repeating while rows are inserted', async () => {
        const user = newUser();
        const original: string[] = [];
        for (let i = 0; i < 23; i++) original.push((await store.conversations.create(user, { title: `c${i}` })).id);
        const seen: ConversationSummary[] = [];
        let cursor: string | undefined;
        let pages = 0;
        do {
          const page = await store.conversations.list(user, { limit: 5, cursor });
          seen.push(...page.items);
          cursor = page.nextCursor ?? undefined;
          pages++;
          // New rows arriving mid-pagination are newer: they must not disturb later pages.
          await store.conversations.create(user, { title: `late${pages}` });
        } while (cursor);
        const seenOriginal = seen.filter((c) => original.includes(c.id)).map((c) => c.id);
        expect(new Set(seen.map((c) => c.id)).size).toBe(seen.length);
        expect(seenOriginal.sort()).toEqual([...original].sort());
        for (let i = 1; i < seen.length; i++) {
          const a = seen[i - 1]!;
          const b = seen[i]!;
          expect(a.updatedAt > b.updatedAt || (a.updatedAt === b.updatedAt && a.id > b.id)).toBe(true);
        }
      });

      it('moves a conversation to the top of the list when a message is added', async () => {
        const user = newUser();
        const first = await store.conversations.create(user, { title: 'first' });
        await store.conversations.create(user, { title: 'second' });
        await new Promise((r) => setTimeout(r, 5));
        await store.conversations.addUserMessage(user, first.id, 'bump');
        const { items } = await store.conversations.list(user);
        expect(items[0]?.id).toBe(first.id);
      });

      it('caps list limits and rejects bad limits and cursors', async () => {
        const user = newUser();
        const page = await store.conversations.list(user, { limit: 1000 });
        expect(page.items.length).toBeLessThanOrEqual(100);
        await expectCode(store.conversations.list(user, { limit: 0 }), 'INVALID_INPUT');
        await expectCode(store.conversations.list(user, { cursor: 'not-a-cursor' }), 'INVALID_INPUT');
      });

      it('stores unicode, emoji, a 1 MB message and injection strings literally', async () => {
        const user = newUser();
        const title = "Ünïcødé 🚀 ✓ 中文 '; drop table conversations; --";
        const { id } = await store.conversations.create(user, { title });
        const big = `${'x'.repeat(1024 * 1024 - 10)}🙂 end`;
        await store.conversations.addUserMessage(user, id, big);
        await store.conversations.addUserMessage(user, id, "Robert'); DROP TABLE messages;-- %_\\ \u00a0");
        const got = await store.conversations.get(user, id);
        expect(got.title).toBe(title);
        expect((got.messages[0] as { content: string }).content).toBe(big);
        expect((got.messages[1] as { content: string }).content).toBe("Robert'); DROP TABLE messages;-- %_\\ \u00a0");
      });

      it('keeps Infinity and NaN inside stage data losslessly', async () => {
        const user = newUser();
        const { id } = await store.conversations.create(user);
        const metadata = {
          label_to_model: { 'Response A': 'm' },
          aggregate_rankings: [
            { model: 'm', average_rank: Number.POSITIVE_INFINITY, rankings_count: 0 },
            { model: 'n', average_rank: Number.NaN, rankings_count: 0 },
          ],
        };
        await store.conversations.addAssistantMessage(user, id, {
          ...sampleAssistant,
          stage2: [{ model: 'm', ranking: '', parsed_ranking: [], score: Number.NEGATIVE_INFINITY }],
          metadata,
        });
        const [message] = (await store.conversations.get(user, id)).messages;
        const got = message as { metadata: typeof metadata; stage2: Array<{ score: number }> };
        expect(got.metadata.aggregate_rankings[0]?.average_rank).toBe(Number.POSITIVE_INFINITY);
        expect(Number.isNaN(got.metadata.aggregate_rankings[1]?.average_rank)).toBe(true);
        expect(got.stage2[0]?.score).toBe(Number.NEGATIVE_INFINITY);
      });

      it('keeps `__proto__` and `constructor` keys in stage data and metadata as own keys', async () => {
        const user = newUser();
        const { id } = await store.conversations.create(user);
        const stage3 = JSON.parse('{"model":"m","response":"r","__proto__":{"polluted":true},"constructor":{"prototype":1}}');
        const metadata = JSON.parse('{"__proto__":[1,2.0,{"__proto__":"deep"}],"label_to_model":{}}');
        await store.conversations.addAssistantMessage(user, id, { ...sampleAssistant, stage3, metadata });
        const [message] = (await store.conversations.get(user, id)).messages;
        const got = message as unknown as { stage3: Record<string, unknown>; metadata: Record<string, unknown> };
        expect(Object.hasOwn(got.stage3, '__proto__')).toBe(true);
        expect(Object.getPrototypeOf(got.stage3)).toBe(Object.prototype);
        expect(Object.getOwnPropertyDescriptor(got.stage3, '__proto__')?.value).toEqual({ polluted: true });
        expect(Object.getOwnPropertyDescriptor(got.stage3, 'constructor')?.value).toEqual({ prototype: 1 });
        expect((got.stage3 as { polluted?: unknown }).polluted).toBeUndefined();
        const list = Object.getOwnPropertyDescriptor(got.metadata, '__proto__')?.value as unknown[];
        expect(list.slice(0, 2).map(Number)).toEqual([1, 2]);
        expect(Object.getOwnPropertyDescriptor(list[2], '__proto__')?.value).toBe('deep');
        expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
      });

      it('searches title and user messages, case-insensitively, treating % and _ literally', async () => {
        const user = newUser();
        const a = await store.conversations.create(user, { title: 'Quarterly Budget' });
        const b = await store.conversations.create(user, { title: 'Other' });
        await store.conversations.addUserMessage(user, b.id, 'what about the BUDGET for 100% growth_rate?');
        await store.conversations.create(user, { title: 'unrelated' });
        const ids = (await store.conversations.search(user, 'budget')).map((c) => c.id).sort();
        expect(ids).toEqual([a.id, b.id].sort());
        expect((await store.conversations.search(user, '100%')).map((c) => c.id)).toEqual([b.id]);
        expect(await store.conversations.search(user, '0%g')).toEqual([]);
        expect(await store.conversations.search(user, 'h%r')).toEqual([]);
        expect(await store.conversations.search(user, 'nothing-matches-this')).toEqual([]);
      });

      it('folds case the same way on every backend: simple per-character lowercase (İ, ß, Σ/σ/ς, ı)', async () => {
        const user = newUser();
        const titles = [
          'İSTANBUL',
          'istanbul',
          'STRAẞE',
          'straße',
          'strasse',
          'ΟΔΟΣ',
          'οδος',
          'σοφία',
          'ıspanak',
          'ISPANAK',
          'KELVIN \u212a',
        ];
        const ids = new Map<string, string>();
        for (const title of titles) ids.set(title, (await store.conversations.create(user, { title })).id);
        const found = async (q: string) => (await store.conversations.search(user, q)).map((c) => c.title).sort();
        expect(await found('istanbul')).toEqual(['istanbul', 'İSTANBUL'].sort());
        expect(await found('İstanbul')).toEqual(['istanbul', 'İSTANBUL'].sort());
        expect(await found('straße')).toEqual(['STRAẞE', 'straße'].sort());
        expect(await found('STRASSE')).toEqual(['strasse']);
        expect(await found('οδοσ')).toEqual(['ΟΔΟΣ', 'οδος'].sort());
        expect(await found('ΟΔΟς')).toEqual(['ΟΔΟΣ', 'οδος'].sort());
        expect(await found('Σοφ')).toEqual(['σοφία']);
        expect(await found('ıspanak')).toEqual(['ıspanak']);
        expect(await found('ispanak')).toEqual(['ISPANAK']);
        expect(await found('kelvin k')).toEqual(['KELVIN \u212a']);
      });

      it('rejects bad input before touching storage', async () => {
        const user = newUser();
        const { id } = await store.conversations.create(user);
        for (const badUser of ['', '../etc', 'a/b', '..', 'x'.repeat(200), 'nul\u0000', ' space']) {
          await expectCode(store.conversations.create(badUser), 'INVALID_INPUT');
          await expectCode(store.conversations.list(badUser), 'INVALID_INPUT');
          await expectCode(store.usage.consume(badUser), 'INVALID_INPUT');
        }
        for (const badId of ['', '../x', 'a/b', '..', 'a.json', 'x'.repeat(200), "1' or '1'='1"]) {
          await expectCode(store.conversations.get(user, badId), 'INVALID_INPUT');
          await expectCode(store.conversations.create(user, { id: badId }), 'INVALID_INPUT');
        }
        await expectCode(store.conversations.updateTitle(user, id, 'x'.repeat(501)), 'INVALID_INPUT');
        await expectCode(store.conversations.addUserMessage(user, id, ''), 'INVALID_INPUT');
        await expectCode(store.conversations.addUserMessage(user, id, 42 as unknown as string), 'INVALID_INPUT');
        await expectCode(store.conversations.addAssistantMessage(user, id, { stage1: 'nope', stage2: [], stage3: {} }), 'INVALID_INPUT');
        expect((await store.conversations.get(user, id)).messageCount).toBe(0);
      });

      it("never shows or changes another user's conversation (NOT_FOUND)", async () => {
        const alice = newUser('alice');
        const bob = newUser('bob');
        const { id } = await store.conversations.create(alice, { title: 'alice secret plans' });
        await store.conversations.addUserMessage(alice, id, 'secret content');
        await expectCode(store.conversations.get(bob, id), 'NOT_FOUND');
        await expectCode(store.conversations.updateTitle(bob, id, 'hijacked'), 'NOT_FOUND');
        await expectCode(store.conversations.addUserMessage(bob, id, 'hi'), 'NOT_FOUND');
        await expectCode(store.conversations.addAssistantMessage(bob, id, sampleAssistant), 'NOT_FOUND');
        await expectCode(store.conversations.delete(bob, id), 'NOT_FOUND');
        expect((await store.conversations.list(bob)).items).toEqual([]);
        expect(await store.conversations.search(bob, 'secret')).toEqual([]);
        const got = await store.conversations.get(alice, id);
        expect(got.title).toBe('alice secret plans');
        expect(got.messageCount).toBe(1);
      });
    });

    describe('cursors', () => {
      it('refuses every malformed cursor with the same INVALID_INPUT, before any storage is read', async () => {
        const user = newUser();
        const { id } = await store.conversations.create(user);
        for (const cursor of MALFORMED_LIST_CURSORS) {
          expect(await failureOf(store.conversations.list(user, { cursor }))).toMatchObject(INVALID_CURSOR);
        }
        for (const messagesCursor of MALFORMED_MESSAGES_CURSORS) {
          expect(await failureOf(store.conversations.get(user, id, { messagesCursor }))).toMatchObject(INVALID_MESSAGES_CURSOR);
        }
      });

      it('accepts any well-formed cursor, even one it did not hand out', async () => {
        const user = newUser();
        const { id } = await store.conversations.create(user, { title: 'only' });
        await store.conversations.addUserMessage(user, id, 'hello');
        const far = cursorOf(['9999-12-31T23:59:59.999999Z', 'zzz']);
        expect((await store.conversations.list(user, { cursor: far })).items.map((c) => c.id)).toEqual([id]);
        const past = cursorOf(['0001-01-01T00:00:00.000000Z', 'a']);
        expect((await store.conversations.list(user, { cursor: past })).items).toEqual([]);
        expect((await store.conversations.get(user, id, { messagesCursor: cursorOf([2 ** 31 - 1]) })).messages).toEqual([]);
        expect((await store.conversations.get(user, id, { messagesCursor: cursorOf([0]) })).messages).toHaveLength(1);
      });
    });

    describe('sendUserMessage (check, count and append in one step)', () => {
      it('appends and counts one query by default, or `consume` queries', async () => {
        const user = newUser();
        const { id } = await store.conversations.create(user);
        const first = await store.conversations.sendUserMessage(user, id, 'Hello');
        expect(first.message).toMatchObject({ role: 'user', position: 0, content: 'Hello' });
        expect(first.usage).toMatchObject({ allowed: true, userId: user, tier: 'free', daily: { used: 1, remaining: 9 } });
        const second = await store.conversations.sendUserMessage(user, id, 'Again', { consume: 3 });
        expect(second.message?.position).toBe(1);
        expect(second.usage.daily.used).toBe(4);
        const got = await store.conversations.get(user, id);
        expect(got.messages.map((m) => (m.role === 'user' ? m.content : ''))).toEqual(['Hello', 'Again']);
        expect(got.messages[1]).toEqual(second.message);
      });

      it('counts nothing for a missing, deleted or foreign conversation (NOT_FOUND) or bad input', async () => {
        const alice = newUser('alice');
        const bob = newUser('bob');
        const { id } = await store.conversations.create(alice);
        await expectCode(store.conversations.sendUserMessage(bob, id, 'hi'), 'NOT_FOUND');
        await expectCode(store.conversations.sendUserMessage(alice, 'no-such-conversation', 'hi'), 'NOT_FOUND');
        await expectCode(store.conversations.sendUserMessage(alice, id, ''), 'INVALID_INPUT');
        await expectCode(store.conversations.sendUserMessage(alice, id, 'hi', { consume: 0 }), 'INVALID_INPUT');
        await store.conversations.delete(alice, id);
        await expectCode(store.conversations.sendUserMessage(alice, id, 'hi'), 'NOT_FOUND');
        for (const user of [alice, bob]) expect((await store.usage.get(user)).totalQueries).toBe(0);
      });

      it('appends nothing when the quota refuses, and reports the usage', async () => {
        const user = newUser();
        const { id } = await store.conversations.create(user);
        await store.usage.consume(user, 9);
        const refused = await store.conversations.sendUserMessage(user, id, 'too much', { consume: 2 });
        expect(refused.message).toBeNull();
        expect(refused.usage).toMatchObject({ allowed: false, daily: { used: 9, limit: 10, remaining: 1 } });
        const got = await store.conversations.get(user, id);
        expect(got.messageCount).toBe(0);
        expect(got.updatedAt).toBe(got.createdAt);
        expect((await store.conversations.sendUserMessage(user, id, 'fits')).message?.position).toBe(0);
      });

      it('stores exactly `limit` messages under concurrent sends at the limit', async () => {
        const user = newUser();
        const [a, b] = [await store.conversations.create(user), await store.conversations.create(user)];
        const results = await Promise.all(
          Array.from({ length: 40 }, (_, i) => store.conversations.sendUserMessage(user, i % 2 ? a.id : b.id, `m${i}`)),
        );
        const sent = results.filter((r) => r.message !== null);
        expect(sent).toHaveLength(10);
        expect(results.every((r) => r.usage.allowed === (r.message !== null))).toBe(true);
        const [gotA, gotB] = [await store.conversations.get(user, a.id), await store.conversations.get(user, b.id)];
        expect(gotA.messageCount + gotB.messageCount).toBe(10);
        for (const got of [gotA, gotB]) expect(got.messages.map((m) => m.position)).toEqual(got.messages.map((_, i) => i));
        expect(await store.usage.get(user)).toMatchObject({ daily: { used: 10 }, totalQueries: 10 });
      });

      it('never costs a query when the conversation is deleted while sends are in flight', async () => {
        const user = newUser();
        const { id } = await store.conversations.create(user);
        const sends = Array.from({ length: 8 }, () => store.conversations.sendUserMessage(user, id, 'racing').catch((e) => e));
        await store.conversations.delete(user, id);
        const outcomes = await Promise.all(sends);
        const delivered = outcomes.filter((o) => !(o instanceof Error)).length;
        expect(outcomes.filter((o) => o instanceof Error).every((e) => (e as { code?: string }).code === 'NOT_FOUND')).toBe(true);
        expect((await store.usage.get(user)).totalQueries).toBe(delivered);
      });
    });

    describe('usage', () => {
      it('reports a fresh free tier for an unknown user', async () => {
        const status = await store.usage.get(newUser());
        expect(status.tier).toBe('free');
        expect(status.daily).toMatchObject({ used: 0, limit: 10, remaining: 10 });
        expect(status.monthly).toMatchObject({ used: 0, limit: 100, remaining: 100 });
        expect(status.totalQueries).toBe(0);
      });

      it('counts queries and refuses past the daily limit without counting', async () => {
        const user = newUser();
        for (let i = 1; i <= 10; i++) {
          const result = await store.usage.consume(user);
          expect(result.allowed).toBe(true);
          expect(result.daily.used).toBe(i);
        }
        const refused = await store.usage.consume(user);
        expect(refused.allowed).toBe(false);
        expect(refused.daily).toMatchObject({ used: 10, remaining: 0 });
        const status = await store.usage.get(user);
        expect(status.daily.used).toBe(10);
        expect(status.monthly.used).toBe(10);
        expect(status.totalQueries).toBe(10);
        expect(Date.parse(status.daily.resetsAt)).toBeGreaterThan(Date.now());
      });

      it('allows exactly the limit under 200 concurrent consume calls', async () => {
        const user = newUser();
        const results = await Promise.all(Array.from({ length: 200 }, () => store.usage.consume(user)));
        expect(results.filter((r) => r.allowed)).toHaveLength(10);
        expect((await store.usage.get(user)).daily.used).toBe(10);
      });

      it('consumes n at once only when all n fit', async () => {
        const user = newUser();
        expect((await store.usage.consume(user, 7)).allowed).toBe(true);
        expect((await store.usage.consume(user, 4)).allowed).toBe(false);
        expect((await store.usage.consume(user, 3)).allowed).toBe(true);
        await expectCode(store.usage.consume(user, 0), 'INVALID_INPUT');
        await expectCode(store.usage.consume(user, 1.5), 'INVALID_INPUT');
      });

      it('changes tier: pro limits, enterprise unlimited, unknown tier refused', async () => {
        const user = newUser();
        const pro = await store.usage.setTier(user, 'pro');
        expect(pro.daily.limit).toBe(100);
        expect(pro.monthly.limit).toBe(3000);
        const enterprise = await store.usage.setTier(user, 'enterprise');
        expect(enterprise.daily).toMatchObject({ limit: null, remaining: null });
        for (let i = 0; i < 30; i++) expect((await store.usage.consume(user)).allowed).toBe(true);
        await expectCode(store.usage.setTier(user, 'platinum' as 'pro'), 'UNPROCESSABLE');
      });

      it('enforces the monthly limit across days', async () => {
        const user = newUser();
        for (let day = 1; day <= 11; day++) {
          clock.set(`2031-01-${String(day).padStart(2, '0')}T12:00:00Z`);
          const result = await store.usage.consume(user, 10);
          expect(result.allowed).toBe(day <= 10);
        }
        const status = await store.usage.get(user);
        expect(status.monthly.used).toBe(100);
      });

      it('resets the daily count at midnight UTC and the monthly count on the 1st', async () => {
        const user = newUser();
        clock.set('2030-03-31T23:59:58Z');
        expect((await store.usage.consume(user, 10)).allowed).toBe(true);
        expect((await store.usage.consume(user)).allowed).toBe(false);
        const before = await store.usage.get(user);
        expect(before.daily.resetsAt).toBe('2030-04-01T00:00:00.000Z');
        expect(before.monthly.resetsAt).toBe('2030-04-01T00:00:00.000Z');
        clock.set('2030-04-01T00:00:01Z');
        const after = await store.usage.consume(user);
        expect(after.allowed).toBe(true);
        expect(after.daily.used).toBe(1);
        expect(after.monthly.used).toBe(1);
        expect(after.totalQueries).toBe(11);
        clock.set('2030-04-02T00:00:01Z');
        const nextDay = await store.usage.consume(user);
        expect(nextDay.daily.used).toBe(1);
        expect(nextDay.monthly.used).toBe(2);
      });

      it('keeps quotas per user', async () => {
        const a = newUser();
        const b = newUser();
        await store.usage.consume(a, 10);
        expect((await store.usage.consume(b)).allowed).toBe(true);
        expect((await store.usage.get(b)).daily.used).toBe(1);
      });
    });

    runFormsContract(() => store, clock);

    it('reports health', async () => {
      const health = await store.health();
      expect(health.ok).toBe(true);
      expect(health.backend).toBe(store.backend);
    });
  });
}
