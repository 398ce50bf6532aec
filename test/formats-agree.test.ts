import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TIER_LIMITS } from '../src/config.ts';
import { isPgFerryError } from '../src/errors.ts';
import { plainJson, rawNumber, stringifyJsonText } from '../src/formats/json-text.ts';
import { isoFromUs } from '../src/formats/timestamps.ts';
import { createJsonStore } from '../src/store/json/index.ts';
import { parseDocument, validateConversation, validateUsage } from '../src/transfer/validate.ts';

/**
 * Issue 8 item 1: the JSON backend and the importer read a file through one
 * reader, so whatever one accepts the other accepts and reads identically.
 * Generated files carry every quirk of DESIGN 8.1 and REAL-FORMATS: a BOM,
 * CRLF, bare NaN/Infinity, `2.0` and big integers, timestamps naive / `Z` /
 * offset / space-separated / epoch floats / missing, omitted metadata, ids and
 * owners that disagree with the path, unknown fields, and broken shapes.
 */

let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'pgferry-agree-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const timestamp = fc.oneof(
  fc.constant('2024-05-01T10:20:30.123456'),
  fc.constant('2024-05-01T10:20:30'),
  fc.constant('2024-05-01 10:20:30.123'),
  fc.constant('2024-05-01T10:20:30.123456Z'),
  fc.constant('2024-05-01T14:20:30.5+04:00'),
  fc.constant(1734775364.9219673),
  fc.constant('2024-02-30T00:00:00'), // no such day
  fc.constant('yesterday'),
  fc.constant(null),
);

const exactNumber = fc.constantFrom('2.0', '1.50', '12345678901234567890', '-0.0', '3').map(rawNumber);
const jsonLeaf = fc.oneof(
  fc.string({ maxLength: 12 }).filter((s) => !s.includes('\u0000')),
  fc.integer(),
  fc.double({ noDefaultInfinity: false }),
  exactNumber,
  fc.boolean(),
  fc.constant(null),
);
const stageValue = fc.oneof(
  fc.array(fc.dictionary(fc.constantFrom('model', 'response', 'average_rank', 'x'), jsonLeaf, { maxKeys: 3 }), { maxLength: 3 }),
  fc.dictionary(fc.constantFrom('model', 'response', 'score'), jsonLeaf, { maxKeys: 3 }),
  fc.constant(null),
);

const message = fc.oneof(
  { weight: 5, arbitrary: fc.record({ role: fc.constant('user'), content: fc.string({ maxLength: 20 }) }) },
  {
    weight: 5,
    arbitrary: fc.record(
      {
        role: fc.constant('assistant'),
        stage1: stageValue,
        stage2: stageValue,
        stage3: stageValue,
        metadata: stageValue,
        created_at: timestamp,
      },
      { requiredKeys: ['role', 'stage1', 'stage2', 'stage3'] },
    ),
  },
  { weight: 1, arbitrary: fc.record({ role: fc.constantFrom('system', 'user'), content: fc.oneof(fc.integer(), fc.constant(null)) }) },
  { weight: 1, arbitrary: fc.constant('not an object') },
);

const conversationDoc = (id: string, user: string) =>
  fc.record(
    {
      id: fc.constantFrom(id, id, id, 'other-id', ''),
      user_id: fc.constantFrom(user, user, 'someone-else', null),
      title: fc.oneof(fc.string({ maxLength: 20 }), fc.constant(42)),
      created_at: timestamp,
      updated_at: timestamp,
      messages: fc.oneof({ weight: 10, arbitrary: fc.array(message, { maxLength: 5 }) }, { weight: 1, arbitrary: fc.constant('none') }),
      extra: fc.string({ maxLength: 5 }),
    },
    { requiredKeys: ['messages'] },
  );

const fileText = (value: unknown, bom: boolean, crlf: boolean): string => {
  const text = stringifyJsonText(value, 2);
  return `${bom ? '\ufeff' : ''}${crlf ? text.replace(/\n/g, '\r\n') : text}`;
};

describe('the JSON backend and the importer read a file identically', () => {
  it('conversations: the same files accepted, the same content read', async () => {
    const dataDir = path.join(root, 'conversations-case');
    const store = createJsonStore({ dataDir, tierLimits: DEFAULT_TIER_LIMITS });
    let accepted = 0;
    let rejected = 0;
    try {
      await fc.assert(
        fc.asyncProperty(fc.nat(1_000_000), fc.boolean(), fc.boolean(), conversationDoc('conv-1', 'user_1'), async (n, bom, crlf, doc) => {
          const id = `conv-${n}`;
          const value = { ...doc, ...(doc.id === 'conv-1' ? { id } : {}) };
          const rel = `conversations/user_1/${id}.json`;
          const file = path.join(dataDir, rel);
          await mkdir(path.dirname(file), { recursive: true });
          await writeFile(file, fileText(value, bom, crlf));
          const { mtimeMs, size } = await stat(file);

          const parsed = parseDocument(fileText(value, bom, crlf));
          expect(parsed.ok).toBe(true);
          const imported = parsed.ok ? validateConversation({ kind: 'conversations', rel, size }, parsed.value, {}, mtimeMs) : undefined;
          const stored = await store.conversations.get('user_1', id).catch((error: unknown) => {
            if (isPgFerryError(error, 'CORRUPT_DATA')) return undefined;
            throw error;
          });

          expect(stored !== undefined, imported && !imported.ok ? imported.reason : 'store refused').toBe(imported?.ok === true);
          if (!imported?.ok || stored === undefined) {
            rejected++;
            return;
          }
          accepted++;
          const row = imported.row;
          expect(stored.title).toBe(row.title);
          expect(stored.createdAt).toBe(isoFromUs(row.createdUs));
          expect(stored.messages).toHaveLength(row.messages.length);
          row.messages.forEach((m, i) => {
            const s = stored.messages[i]!;
            expect(s.role).toBe(m.role);
            expect(s.createdAt).toBe(isoFromUs(m.createdUs));
            if (s.role === 'user') expect(s.content).toBe(m.content);
            else {
              expect(s.stage1).toEqual(plainJson(m.stage1));
              expect(s.stage2).toEqual(plainJson(m.stage2));
              expect(s.stage3).toEqual(plainJson(m.stage3));
              expect(s.metadata).toEqual(m.metadata === undefined ? undefined : plainJson(m.metadata));
            }
          });
        }),
        { numRuns: 150, seed: 81 },
      );
    } finally {
      await store.close();
    }
    // The generator reaches both sides of the question.
    expect(accepted).toBeGreaterThan(10);
    expect(rejected).toBeGreaterThan(10);
  });

  it('usage: the same files accepted (both spellings), the same counters read', async () => {
    const dataDir = path.join(root, 'usage-case');
    const store = createJsonStore({ dataDir, tierLimits: DEFAULT_TIER_LIMITS, clock: () => new Date('2026-12-01T12:00:00Z') });
    const counter = fc.oneof(fc.nat(50), exactNumber, fc.constant(-1), fc.constant('7'), fc.constant(null));
    const day = fc.constantFrom('2026-12-01', '2026-11-30T08:00:00.123456', '2026-12-01 00:00:00', 'soon', null);
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.nat(1_000_000),
          fc.boolean(),
          fc.record(
            {
              tier: fc.constantFrom('free', 'pro', 'enterprise', 'gold', null),
              total_queries: counter,
              count: counter,
              month: counter,
              last_day: day,
              last_month: day,
            },
            { requiredKeys: [] },
          ),
          async (n, seedNames, f) => {
            const user = `user_${n}`;
            const names = seedNames
              ? { count: 'daily_used', month: 'monthly_used', last_day: 'last_reset_daily', last_month: 'last_reset_monthly' }
              : { count: 'daily_count', month: 'monthly_count', last_day: 'last_daily_reset', last_month: 'last_monthly_reset' };
            const doc: Record<string, unknown> = { user_id: user };
            for (const [key, value] of Object.entries(f)) doc[(names as Record<string, string>)[key] ?? key] = value;
            const rel = `usage/${user}/usage.json`;
            const file = path.join(dataDir, rel);
            await mkdir(path.dirname(file), { recursive: true });
            await writeFile(file, fileText(doc, false, false));

            const parsed = parseDocument(fileText(doc, false, false));
            const imported = parsed.ok ? validateUsage({ kind: 'usage', rel, size: 0 }, parsed.value) : undefined;
            const stored = await store.usage.get(user).catch((error: unknown) => {
              if (isPgFerryError(error, 'CORRUPT_DATA')) return undefined;
              throw error;
            });
            expect(stored !== undefined).toBe(imported?.ok === true);
            if (!imported?.ok || stored === undefined) return;
            expect(stored.tier).toBe(imported.row.tier);
            expect(stored.totalQueries).toBe(imported.row.totalQueries);
            // The store rolls the periods to "now"; the counts survive only in the current day / month.
            expect(stored.daily.used).toBe(imported.row.lastResetDaily === '2026-12-01' ? imported.row.dailyUsed : 0);
            expect(stored.monthly.used).toBe(imported.row.lastResetMonthly === '2026-12-01' ? imported.row.monthlyUsed : 0);
          },
        ),
        { numRuns: 120, seed: 82 },
      );
    } finally {
      await store.close();
    }
  });
});
