import fs from 'node:fs/promises';
import path from 'node:path';
import { rawNumber, stringifyJsonText } from '../formats/json-text.ts';
import { mapOrdered } from './concurrency.ts';

/**
 * A realistic chat-app corpus in the seed layout (DESIGN 8.1), with the
 * quirks real files have: Python's bare NaN/Infinity in aggregate rankings,
 * naive UTC timestamps with microseconds, no `updated_at`, `metadata`
 * omitted when empty, the odd UTF-8 BOM and CRLF line ends. Deterministic
 * for a given seed, so a corpus can be regenerated instead of stored.
 */

export interface SampleOptions {
  users: number;
  /** Conversations per user. */
  conversations: number;
  /** Messages per conversation, on average (user and assistant alternate). */
  messages: number;
  seed?: number;
  /** Concurrent file writes. */
  concurrency?: number;
  /** Called after each user's files are written. */
  onUser?: (done: number, total: number) => void;
}

export interface SampleResult {
  users: number;
  conversations: number;
  messages: number;
  files: number;
  bytes: number;
}

/** mulberry32: small, fast, good enough for test data. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (min: number, max: number) => min + Math.floor(next() * (max - min + 1)),
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!,
    chance: (p: number) => next() < p,
  };
}
type Rng = ReturnType<typeof rng>;

const MODELS = ['openai/gpt-4o', 'anthropic/claude-3.5-sonnet', 'google/gemini-1.5-pro', 'x-ai/grok-2'];
const CHAIRMAN = 'google/gemini-1.5-pro';
const WORDS = (
  'the a of to and in is that for it as with on be this by are or from at an which can not have more has its they their ' +
  'model answer question data system approach however because example result first second important different between ' +
  'performance memory database query index transaction latency throughput consistency replication backup migration schema ' +
  'function value process request response user server client network cache error retry timeout design trade-off cost ' +
  'we you should would could also other such each these those when where while only both then than into over under ' +
  'PostgreSQL JSON Python TypeScript Node.js API HTTP SQL café naïve résumé 数据 模型 — “quoted” ‘single’'
).split(' ');
const TOPICS = [
  'Explain how PostgreSQL MVCC works',
  'Compare Python and TypeScript for a CLI tool',
  'How do I migrate JSON files to a database?',
  'What is the best way to paginate an API?',
  'Summarise the causes of the 2008 financial crisis',
  'Write a haiku about backups',
  'Why does my Node.js process leak memory?',
  'Plan a three-day trip to Lisbon',
];

function sentence(r: Rng, words: number): string {
  let out = '';
  for (let i = 0; i < words; i++) out += (i === 0 ? '' : ' ') + r.pick(WORDS);
  return `${out.charAt(0).toUpperCase()}${out.slice(1)}.`;
}

/** Text of about `chars` characters, in paragraphs, sometimes with a list or code. */
function text(r: Rng, chars: number): string {
  const parts: string[] = [];
  let length = 0;
  while (length < chars) {
    const roll = r.next();
    const part =
      roll < 0.08
        ? '```sql\nselect id, title from conversations\n where user_id = $1\n order by updated_at desc;\n```'
        : roll < 0.16
          ? `1. ${sentence(r, 6)}\n2. ${sentence(r, 7)}\n3. ${sentence(r, 5)}`
          : `${sentence(r, r.int(8, 20))} ${sentence(r, r.int(6, 16))}`;
    parts.push(part);
    length += part.length + 2;
  }
  return parts.join('\n\n');
}

function uid(r: Rng, length: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[Math.floor(r.next() * alphabet.length)];
  return out;
}

function uuid(r: Rng): string {
  const hex = () => Math.floor(r.next() * 16).toString(16);
  let out = '';
  for (let i = 0; i < 32; i++) out += i === 12 ? '4' : i === 16 ? '89ab'[Math.floor(r.next() * 4)] : hex();
  return `${out.slice(0, 8)}-${out.slice(8, 12)}-${out.slice(12, 16)}-${out.slice(16, 20)}-${out.slice(20)}`;
}

/** Python's `datetime.utcnow().isoformat()`: naive, microseconds unless they are zero. */
function naive(us: number): string {
  const iso = new Date(Math.floor(us / 1000)).toISOString().slice(0, 19);
  const micro = us % 1_000_000;
  return micro === 0 ? iso : `${iso}.${String(micro).padStart(6, '0')}`;
}

function assistantMessage(r: Rng): Record<string, unknown> {
  const labels = MODELS.map((_, i) => `Response ${String.fromCharCode(65 + i)}`);
  const stage1 = MODELS.map((model) => ({ model, response: text(r, r.int(100, 500)) }));
  const stage2 = MODELS.map((model) => {
    const order = [...labels].sort(() => r.next() - 0.5);
    return {
      model,
      ranking: `${text(r, r.int(60, 200))}\n\nFINAL RANKING:\n${order.map((l, i) => `${i + 1}. ${l}`).join('\n')}`,
      parsed_ranking: order,
    };
  });
  const message: Record<string, unknown> = {
    role: 'assistant',
    stage1,
    stage2,
    stage3: { model: CHAIRMAN, response: text(r, r.int(200, 700)) },
  };
  // The app omits metadata when it is empty; a model that no one ranked averages NaN,
  // and a failed parse left Infinity — Python writes both bare.
  if (!r.chance(0.2)) {
    message.metadata = {
      label_to_model: Object.fromEntries(labels.map((l, i) => [l, MODELS[i]])),
      aggregate_rankings: MODELS.map((model) => {
        const roll = r.next();
        const unranked = roll < 0.03;
        return {
          model,
          average_rank: unranked ? Number.NaN : roll < 0.05 ? Number.POSITIVE_INFINITY : pythonFloat(Math.round(r.next() * 12 + 4) / 4),
          rankings_count: unranked ? 0 : MODELS.length,
        };
      }),
    };
  }
  return message;
}

/** What Python's json.dump writes by default: every non-ASCII UTF-16 unit as \\uXXXX. */
const asciiOnly = (json: string): string =>
  json.replace(/[\u0080-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);

export async function writeSample(dir: string, options: SampleOptions): Promise<SampleResult> {
  const r = rng(options.seed ?? 1);
  const result: SampleResult = { users: 0, conversations: 0, messages: 0, files: 0, bytes: 0 };
  const base = Date.UTC(2024, 0, 1) * 1000;
  for (let u = 0; u < options.users; u++) {
    const userId = uid(r, 28);
    const userDir = path.join(dir, 'conversations', userId);
    await fs.mkdir(userDir, { recursive: true });
    const docs: Array<{ file: string; body: string }> = [];
    for (let c = 0; c < options.conversations; c++) {
      const id = uuid(r);
      let clock = base + r.int(0, 300 * 86_400) * 1_000_000 + r.int(0, 999_999);
      const createdAt = naive(clock);
      const count = options.messages <= 0 ? 0 : Math.max(1, options.messages + r.int(-2, 2));
      const messages: Record<string, unknown>[] = [];
      for (let m = 0; m < count; m++) {
        clock += r.int(5, 600) * 1_000_000 + r.int(0, 999_999);
        messages.push(m % 2 === 0 ? { role: 'user', content: `${r.pick(TOPICS)}? ${sentence(r, r.int(4, 30))}` } : assistantMessage(r));
      }
      const doc: Record<string, unknown> = {
        id,
        user_id: userId,
        created_at: createdAt,
        title: r.chance(0.1) ? 'New Conversation' : r.pick(TOPICS),
        messages,
      };
      // Newer app versions write updated_at with a zone; most files have none at all.
      if (r.chance(0.1)) doc.updated_at = `${new Date(Math.floor(clock / 1000)).toISOString()}`;
      // Python's json.dump escapes non-ASCII unless told otherwise (ensure_ascii).
      let body = stringifyJsonText(doc, 2);
      if (!r.chance(0.1)) body = asciiOnly(body);
      if (r.chance(0.05)) body = body.replace(/\n/g, '\r\n'); // edited on Windows
      if (r.chance(0.03)) body = `\ufeff${body}`; // saved by an editor that adds a BOM
      docs.push({ file: path.join(userDir, `${id}.json`), body });
      result.conversations++;
      result.messages += messages.length;
    }
    const usageDir = path.join(dir, 'usage', userId);
    await fs.mkdir(usageDir, { recursive: true });
    const daily = r.int(0, 10);
    const tier = r.pick(['free', 'free', 'free', 'pro', 'enterprise']);
    docs.push({
      file: path.join(usageDir, 'usage.json'),
      body: stringifyJsonText(
        {
          user_id: userId,
          daily_count: daily,
          monthly_count: daily + r.int(0, 90),
          last_daily_reset: naive(base + r.int(0, 300) * 86_400_000_000).slice(0, 10),
          last_monthly_reset: naive(base + r.int(0, 9) * 31 * 86_400_000_000).slice(0, 8) + '01',
          total_queries: daily + r.int(0, 5000),
          tier,
        },
        2,
      ),
    });
    for await (const bytes of mapOrdered(docs, options.concurrency ?? 16, async ({ file, body }) => {
      await fs.writeFile(file, body);
      return Buffer.byteLength(body);
    })) {
      result.bytes += bytes;
      result.files++;
    }
    result.users++;
    options.onUser?.(result.users, options.users);
  }
  return result;
}

/** A float as Python's json writes it: a whole number keeps its `.0` (`2.0`, which JSON.stringify would write as `2`). */
function pythonFloat(value: number): unknown {
  return Number.isInteger(value) ? rawNumber(`${value}.0`) : value;
}
