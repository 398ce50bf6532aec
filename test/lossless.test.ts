import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TIER_LIMITS } from '../src/config.ts';
import { isRawNumber, numericText, parseJsonText, plainJson, stringifyJsonText } from '../src/formats/json-text.ts';
import { createJsonStore } from '../src/store/json/index.ts';
import { jsonbText } from '../src/transfer/canonical.ts';
import { runCli, write } from './fixtures/import-corpus.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * Issue 8 item 2: a JSON number keeps its value and its written form from
 * the source file into PostgreSQL, and through every file pgferry rewrites.
 * JavaScript's JSON.parse turns `2.0` into 2 and loses digits of
 * 12345678901234567890; the seed apps write both.
 */

/** Lexemes the seed apps write, and edge cases of PostgreSQL's numeric. */
const LEXEMES = ['2.0', '1.50', '12345678901234567890', '1e400', '-0.0', '-0', '0.0000001', '1E-7', '1.5e+3', '0.10e1', '100', '3'];

let db: TestDatabase;
let tmp: string;

beforeAll(async () => {
  db = await createTestDatabase();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-lossless-'));
});

afterAll(async () => {
  await db?.drop();
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('JSON text', () => {
  it('parse then stringify gives back every number exactly as written', () => {
    const text = `{"a": [${LEXEMES.join(', ')}], "b": {"average_rank": 2.0, "n": NaN, "i": [Infinity, -Infinity]}, "s": "2.0 stays a string"}`;
    const value = parseJsonText(text);
    expect(stringifyJsonText(value)).toBe(text.replace(/, /g, ',').replace(/": /g, '":'));
  });

  it('keeps only numbers JSON.parse would change as exact lexemes; plain numbers stay numbers', () => {
    const value = parseJsonText('[2.0, 2, 1.5, 12345678901234567890, 9007199254740991]') as unknown[];
    expect(value.map(isRawNumber)).toEqual([true, false, false, true, false]);
    expect(plainJson(value)).toEqual([2, 2, 1.5, Number('12345678901234567890'), 9007199254740991]);
  });

  it('round-trips any generated document with exact-number lexemes', () => {
    const lexeme = fc
      .tuple(
        fc.boolean(),
        fc.stringMatching(/^(0|[1-9]\d{0,24})$/),
        fc.option(fc.stringMatching(/^\d{1,20}$/)),
        fc.option(fc.integer({ min: -30, max: 30 })),
      )
      .map(([neg, int, frac, exp]) => `${neg ? '-' : ''}${int}${frac ? `.${frac}` : ''}${exp === null ? '' : `e${exp}`}`);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.string({ maxLength: 8 }), lexeme), { maxLength: 10 }), (pairs) => {
        const text = `{${pairs.map(([k, v], i) => `${JSON.stringify(`k${i}${k}`)}:${v}`).join(',')}}`;
        expect(stringifyJsonText(parseJsonText(text))).toBe(text);
        // and in arrays (after `[` and `,`), and as a whole document
        const array = `[${pairs.map(([, v]) => v).join(',')}]`;
        expect(stringifyJsonText(parseJsonText(array))).toBe(array);
        for (const [, v] of pairs) expect(stringifyJsonText(parseJsonText(v))).toBe(v);
      }),
      { numRuns: 300, seed: 8 },
    );
  });

  it('numericText prints a lexeme exactly as PostgreSQL prints it back from jsonb', async () => {
    const generated = fc.sample(
      fc
        .tuple(fc.boolean(), fc.stringMatching(/^(0|[1-9]\d{0,30})$/), fc.stringMatching(/^\d{0,12}$/), fc.integer({ min: -40, max: 40 }))
        .map(([neg, int, frac, exp]) => `${neg ? '-' : ''}${int}${frac ? `.${frac}` : ''}e${exp}`),
      { numRuns: 300, seed: 3 },
    );
    const lexemes = [...LEXEMES, ...generated];
    const rows = await db.db.sql<{ out: string }[]>`
      select t::jsonb::text as out from unnest(${lexemes}::text[]) with ordinality as x(t, n) order by n`;
    lexemes.forEach((lexeme, i) => {
      expect(numericText(lexeme), lexeme).toBe(rows[i]!.out);
      expect(jsonbText(parseJsonText(lexeme)), lexeme).toBe(rows[i]!.out);
    });
  });

  it('a number PostgreSQL cannot hold is refused before it is expanded', () => {
    expect(() => numericText('1e999999999')).toThrow(/outside PostgreSQL's numeric range/);
  });
});

/** A chat-app conversation file holding the seed apps' number forms in stage data and metadata. */
function conversationText(id: string): string {
  return `{
  "id": "${id}",
  "user_id": "u1",
  "created_at": "2026-12-01T16:32:04.703112",
  "title": "Numbers",
  "messages": [
    {
      "role": "user",
      "content": "rank them"
    },
    {
      "role": "assistant",
      "stage1": [{"model": "a", "response": "x", "tokens": 12345678901234567890}],
      "stage2": [{"model": "a", "ranking": "1. A", "parsed_ranking": ["Response A"], "score": 1.50}],
      "stage3": {"model": "c", "response": "done", "huge": 1e400, "zero": -0.0},
      "metadata": {"aggregate_rankings": [{"model": "a", "average_rank": 2.0, "rankings_count": 3}, {"model": "b", "average_rank": Infinity, "rankings_count": 0}]}
    }
  ]
}`;
}

describe('import and verify keep every number', () => {
  let dir: string;

  beforeAll(async () => {
    dir = path.join(tmp, 'source');
    await write(dir, 'conversations/u1/conv-n.json', conversationText('conv-n'));
    const result = await runCli(['import', '--from', dir, '--to', db.url]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
  });

  it('stores 2.0, 1.50, 12345678901234567890 exactly and 1e400 / -0.0 as numeric prints them', async () => {
    const [row] = await db.db.sql<{ text: string }[]>`
      select concat_ws(' | ', m.stage1_data::text, m.stage2_data::text, m.stage3_data::text, m.metadata::text) as text
        from messages m where m.conversation_id = 'conv-n' and m.role = 'assistant'`;
    const text = row!.text;
    expect(text).toContain('"tokens": 12345678901234567890');
    expect(text).toContain('"score": 1.50');
    expect(text).toContain('"average_rank": 2.0');
    expect(text).toContain(`"huge": 1${'0'.repeat(400)}`);
    expect(text).toContain('"zero": 0.0');
  });

  it('verify passes, then catches 2.0 turned into 2 in the database', async () => {
    const clean = await runCli(['verify', '--from', dir, '--to', db.url]);
    expect(clean.code, clean.stdout + clean.stderr).toBe(0);
    await db.db.sql`
      update messages set metadata = replace(metadata::text, '"average_rank": 2.0', '"average_rank": 2')::jsonb
       where conversation_id = 'conv-n' and role = 'assistant'`;
    const changed = await runCli(['verify', '--from', dir, '--to', db.url]);
    expect(changed.code, changed.stdout + changed.stderr).toBe(1);
    expect(changed.stdout + changed.stderr).toMatch(/conv-n/);
  });
});

describe('the JSON backend rewrites a file without changing its numbers', () => {
  it('an append and a retitle leave every other value exactly as written; callers get plain numbers', async () => {
    const dataDir = path.join(tmp, 'store');
    const file = await write(dataDir, 'conversations/u1/conv-j.json', conversationText('conv-j'));
    const store = createJsonStore({ dataDir, tierLimits: DEFAULT_TIER_LIMITS });
    try {
      await store.conversations.addUserMessage('u1', 'conv-j', 'and again');
      await store.conversations.updateTitle('u1', 'conv-j', 'Renamed');
      const text = await fs.readFile(file, 'utf8');
      for (const lexeme of ['12345678901234567890', '1.50', '1e400', '-0.0', '"average_rank": 2.0', 'Infinity']) {
        expect(text).toContain(lexeme);
      }
      const conversation = await store.conversations.get('u1', 'conv-j');
      const assistant = conversation.messages[1] as { metadata: { aggregate_rankings: Array<{ average_rank: unknown }> } };
      expect(assistant.metadata.aggregate_rankings[0]!.average_rank).toBe(2);
      expect(assistant.metadata.aggregate_rankings[1]!.average_rank).toBe(Number.POSITIVE_INFINITY);
    } finally {
      await store.close();
    }
  });
});
