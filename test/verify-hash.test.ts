import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConversationHead, canonicalMessage, hashConversation, type MessageContent, messageJson } from '../src/transfer/canonical.ts';
import { databaseHashes, hashInNode, hashInServer } from '../src/transfer/kinds/conversations/verify.ts';
import { formatTimestampUs, parseDocument } from '../src/transfer/validate.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * verify's database side is hashed by PostgreSQL (kinds/conversations/verify.ts):
 * the server must build exactly canonical.ts's text, or verify would report
 * differences that are not there (or, worse, hide one). Random conversations
 * — titles, ids and contents with every character class JSON escapes or
 * not, stage data of every JSON shape with NaN/±Infinity tags and exact
 * number lexemes — are written as rows, and the server's hash must equal
 * hashConversation of the same values, and the Node-side hash of the rows.
 */

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.drop();
});

/** Characters JSON escapes (quotes, backslash, every control), the ones it must not (U+2028/9, DEL, non-BMP, BOM), and any other. */
const SPECIAL = [
  ...Array.from({ length: 31 }, (_, i) => String.fromCharCode(i + 1)),
  '"',
  '\\',
  '/',
  "'",
  '\u007f',
  '\u0080',
  '\u00a0',
  '\u2028',
  '\u2029',
  '\ufeff',
  '\ufffd',
  'é',
  '中',
  '😀',
  '𝄞',
  '\u{10ffff}',
];
const anyCodePoint = fc
  .integer({ min: 1, max: 0x10ffff })
  .filter((cp) => cp < 0xd800 || cp > 0xdfff)
  .map((cp) => String.fromCodePoint(cp));
const char = fc.oneof(fc.constantFrom(...SPECIAL), anyCodePoint, fc.constantFrom('a', 'b', ' ', '0'));
const text = fc.string({ unit: char, maxLength: 12 });

/** Values as the reader has them after parsing: exact lexemes (2.0 stays 2.0), Python's bare NaN/Infinity, tag-named keys. */
const LEXEMES = parseDocument(
  '[2.0, 1e2, -0.0, 1.50, 12345678901234567890.123, 1E-7, NaN, Infinity, -Infinity, {"$pgferry:float": "NaN"}, {"$pgferry:object": 1}]',
);
if (!LEXEMES.ok) throw new Error(LEXEMES.reason);
const lexeme = fc.constantFrom(...(LEXEMES.value as unknown[]));

const leaf = fc.oneof(text, fc.double(), fc.integer(), fc.boolean(), fc.constant(null), lexeme);
const { value: jsonShape } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(text, fc.constantFrom('$pgferry:float', '$pgferry:object', 'response', 'aa')), tie('value'), {
      maxKeys: 4,
    }),
  ),
}));
const optionalJson = fc.oneof(fc.constant(null), jsonShape);

const message: fc.Arbitrary<MessageContent> = fc.record({
  role: fc.constantFrom('user', 'assistant'),
  content: fc.option(text),
  stage1: optionalJson,
  stage2: optionalJson,
  stage3: optionalJson,
  metadata: optionalJson,
});

interface Generated {
  head: ConversationHead;
  /** created_at as a timestamptz literal (beyond ±2^53 µs the number is not exact). */
  createdAt: string;
  messages: MessageContent[];
}

const conversation = (n: number): fc.Arbitrary<Generated> =>
  fc
    .record({
      id: text,
      userId: text,
      title: text,
      createdUs: fc.maxSafeInteger(),
      messages: fc.array(message, { maxLength: 6 }),
    })
    .map(({ id, userId, title, createdUs, messages }) => ({
      head: { id: `${n}:${id}`, userId, title, createdUs },
      createdAt: formatTimestampUs(createdUs),
      messages,
    }));

/** Rows written as the import writes them (parameters as text: postgres.js would re-encode a Date or a JSON value). */
async function insert(conversations: readonly Generated[]): Promise<void> {
  const sql = db.db.sql;
  const c = conversations;
  await sql`
    insert into conversations (id, user_id, title, created_at, message_count)
    select * from unnest(${c.map((x) => x.head.id)}::text[], ${c.map((x) => x.head.userId)}::text[], ${c.map((x) => x.head.title)}::text[],
                         ${c.map((x) => x.createdAt)}::text[]::timestamptz[], ${c.map((x) => x.messages.length)}::int[])`;
  const rows = c.flatMap((x) => x.messages.map((m, position) => ({ id: x.head.id, position, m, json: messageJson(m) })));
  await sql`
    insert into messages (conversation_id, position, role, content, stage1_data, stage2_data, stage3_data, metadata)
    select * from unnest(${rows.map((r) => r.id)}::text[], ${rows.map((r) => r.position)}::int[], ${rows.map((r) => r.m.role)}::text[],
                         ${rows.map((r) => r.m.content)}::text[], ${rows.map((r) => r.json.stage1)}::text[]::jsonb[], ${rows.map((r) => r.json.stage2)}::text[]::jsonb[],
                         ${rows.map((r) => r.json.stage3)}::text[]::jsonb[], ${rows.map((r) => r.json.metadata)}::text[]::jsonb[])`;
}

const expectedHash = (x: Generated) =>
  hashConversation(
    x.head,
    x.messages.map((m) => canonicalMessage(m.role, m.content, messageJson(m))),
  );

describe("verify's database-side hash", () => {
  it('PostgreSQL computes hashConversation for random conversations, character by character', async () => {
    const samples = fc.sample(fc.integer({ min: 0, max: 1e9 }), { numRuns: 300, seed: 8 });
    const conversations = samples.map((seed, n) => fc.sample(conversation(n), { numRuns: 1, seed })[0]!);
    await insert(conversations);
    const keys = conversations.map((x) => x.head.id);
    const fromServer = await hashInServer(db.db, keys);
    const fromNode = await hashInNode(db.db, keys);
    expect(fromServer?.size).toBe(conversations.length);
    for (const x of conversations) {
      const expected = expectedHash(x);
      expect(fromNode.get(x.head.id), JSON.stringify(x)).toBe(expected);
      expect(fromServer!.get(x.head.id), JSON.stringify(x)).toBe(expected);
    }
  });

  it('every JSON escape PostgreSQL writes is the one JSON.stringify writes', async () => {
    const all = Array.from({ length: 0x800 }, (_, i) => i + 1)
      .concat([0x2028, 0x2029, 0xfeff, 0xfffd, 0xffff, 0x1f600, 0x10ffff])
      .filter((cp) => cp < 0xd800 || cp > 0xdfff)
      .map((cp) => String.fromCodePoint(cp));
    const rows = await db.db.sql<{ out: string }[]>`
      select to_json(t)::text as out from unnest(${all}::text[]) with ordinality as x(t, n) order by n`;
    expect(rows.map((r) => r.out)).toEqual(all.map((c) => JSON.stringify(c)));
  });

  it('only the order of positions counts: gaps, or a first position other than 0, hash as 0..n-1', async () => {
    const x: Generated = {
      head: { id: 'gaps', userId: 'u', title: 't', createdUs: 1_714_558_830_123_456 },
      createdAt: formatTimestampUs(1_714_558_830_123_456),
      messages: ['a', 'b', 'c'].map((content) => ({ role: 'user', content, stage1: null, stage2: null, stage3: null, metadata: null })),
    };
    await insert([x]);
    await db.db.sql`update messages set position = position * 5 + 3 where conversation_id = 'gaps'`;
    expect((await hashInServer(db.db, ['gaps']))?.get('gaps')).toBe(expectedHash(x));
    expect((await hashInNode(db.db, ['gaps'])).get('gaps')).toBe(expectedHash(x));
  });

  it('a created_at JavaScript cannot hold exactly is hashed here, from the rows', async () => {
    const far: Generated[] = ['2300-06-15 12:34:56.789012+00', '1500-01-01 00:00:00.000001+00'].map((createdAt, i) => ({
      head: { id: `far-${i}`, userId: 'u', title: 't', createdUs: 0 },
      createdAt,
      messages: [{ role: 'user', content: 'hi', stage1: null, stage2: null, stage3: null, metadata: null }],
    }));
    await insert(far);
    const keys = far.map((x) => x.head.id);
    const fromServer = await hashInServer(db.db, keys);
    expect([...fromServer!.values()]).toEqual([null, null]);
    const hashes = await databaseHashes(db.db, [...keys, 'no-such-conversation']);
    expect(hashes).toEqual(await hashInNode(db.db, keys));
    expect(hashes.size).toBe(2);
  });
});
