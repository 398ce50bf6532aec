import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TIER_LIMITS } from '../src/config.ts';
import type { AssistantMessage, UserMessage } from '../src/domain/conversations.ts';
import { createPostgresStore } from '../src/store/postgres/index.ts';
import { derivedKey } from '../src/transfer/records.ts';
import { runCliWithDeadline, type TimedRun } from './helpers/cli.ts';
import { adminUrl, createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * Acceptance test of `pgferry import` / `pgferry verify` (issue 4) written
 * against the spec, not the code: real seed-format files (DESIGN 8.1) and
 * hostile ones, written to a temp directory and fed to the real CLI in a
 * child process. Each case checks exit code, the summary, the JSON Lines
 * report and the rows in PostgreSQL.
 */

// ---------------------------------------------------------------------------
// Running the CLI
// ---------------------------------------------------------------------------

type Run = TimedRun;

/** The CLI in a child process, with only the env a test passes; killed (and reported as such) at the deadline. */
const cli = (args: string[], env: Record<string, string | undefined> = {}, timeoutMs = 30_000): Promise<Run> =>
  runCliWithDeadline(args, { env, timeoutMs });

/** The summary table a run printed: kind → column → number. */
function table(stdout: string): Record<string, Record<string, number>> {
  const lines = stdout.split('\n');
  const at = lines.findIndex((line) => /^kind\s+/.test(line));
  if (at < 0) throw new Error(`no summary table in:\n${stdout}`);
  const header = (lines[at] ?? '').trim().split(/\s+/).slice(1);
  const out: Record<string, Record<string, number>> = {};
  for (const line of lines.slice(at + 1)) {
    const cells = line.trim().split(/\s+/);
    const kind = cells[0];
    if (!kind || !/^[a-z]+$/.test(kind) || cells.length !== header.length + 1) break;
    out[kind] = Object.fromEntries(header.map((name, i) => [name, Number((cells[i + 1] ?? '').replace(/,/g, ''))]));
  }
  return out;
}

interface ReportLine {
  kind?: string;
  file?: string | null;
  record?: string | null;
  reason?: string;
  severity?: string;
  [key: string]: unknown;
}

async function readReport(file: string): Promise<ReportLine[]> {
  const text = await readFile(file, 'utf8');
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as ReportLine);
}

const errorsOf = (lines: ReportLine[]) => lines.filter((line) => line.severity !== 'warning');

// ---------------------------------------------------------------------------
// Writing files the way the seed app (Python) writes them
// ---------------------------------------------------------------------------

const NON_FINITE = '__pyfloat__:';

/**
 * `json.dump(value, f, indent=2)` as CPython writes it: ensure_ascii (every
 * non-ASCII character as a lowercase \uXXXX escape, astral ones as surrogate
 * pairs) and bare NaN / Infinity / -Infinity.
 */
function pythonJson(value: unknown, options: { indent?: number; bom?: boolean; crlf?: boolean } = {}): string {
  let text = JSON.stringify(
    value,
    (_key, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? `${NON_FINITE}${String(v)}` : v),
    options.indent,
  );
  text = text.replace(new RegExp(`"${NON_FINITE}(NaN|Infinity|-Infinity)"`, 'g'), '$1');
  text = text.replace(/[\u0080-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (options.crlf) text = text.replace(/\n/g, '\r\n');
  return `${options.bom ? '\ufeff' : ''}${text}`;
}

/** What PostgreSQL's JSONB holds for a value with non-finite numbers (DESIGN: tagged, lossless). */
function tagged(value: unknown): unknown {
  if (typeof value === 'number' && !Number.isFinite(value)) return { '$pgferry:float': String(value) };
  if (Array.isArray(value)) return value.map(tagged);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, tagged(v)]));
  return value;
}

async function put(file: string, text: string | Buffer): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, text);
}

/** `2024-03-05T14:07:09.1` → `2024-03-05T14:07:09.100000` (what the database must hold, in UTC). */
function micros(naive: string): string {
  const [whole, fraction = ''] = naive.split('.');
  return `${whole}.${fraction.padEnd(6, '0')}`;
}

// ---------------------------------------------------------------------------
// The real-format corpus (DESIGN 8.1)
// ---------------------------------------------------------------------------

const ALPHA = 'GLdx18wpY4nMDyiq1lEoVITiBodz'; // a Firebase uid
const BETA = 'auth0|5f1c2d3e4a'; // an Auth0 subject: '|' in a folder name
const GAMMA = 'ent.user@example.com'; // usage only, no conversations

interface SeedConversation {
  file: string;
  user: string;
  doc: {
    id: string;
    user_id: string;
    created_at: string;
    title: string;
    messages: Array<Record<string, unknown>>;
  };
  format: { indent?: number; bom?: boolean; crlf?: boolean };
}

const C1 = '3f2b8c1e-9a4d-4e7b-8f21-0c6d5a9e1b23';
const C2 = 'a0c1d2e3-f405-4617-8829-3a4b5c6d7e8f';
const C3 = '5e6f7a8b-9c0d-41e2-a3b4-c5d6e7f80912';
const C4 = 'd4c3b2a1-0f9e-48d7-b6c5-a4b3c2d1e0f9';

function seedConversations(): SeedConversation[] {
  const assistantFull = {
    role: 'assistant',
    stage1: [
      {
        model: 'openai/gpt-4o',
        response: 'Rayleigh scattering: shorter wavelengths scatter more.\n\nSo the sky looks blue — «très» bleu.',
      },
      { model: 'google/gemini-2.5-pro', response: 'Blue light (~450 nm) is scattered ∝ 1/λ⁴. 😀' },
    ],
    stage2: [
      {
        model: 'openai/gpt-4o',
        ranking: 'Response B is more precise.\n\nFINAL RANKING:\n1. Response B\n2. Response A',
        parsed_ranking: ['Response B', 'Response A'],
      },
      { model: 'google/gemini-2.5-pro', ranking: 'FINAL RANKING:\n1. Response A', parsed_ranking: ['Response A'] },
    ],
    stage3: { model: 'google/gemini-2.5-pro', response: 'The sky is blue because of Rayleigh scattering.' },
    metadata: {
      label_to_model: { 'Response A': 'openai/gpt-4o', 'Response B': 'google/gemini-2.5-pro' },
      aggregate_rankings: [
        { model: 'google/gemini-2.5-pro', average_rank: 1.5, rankings_count: 2 },
        { model: 'anthropic/claude-3.5-sonnet', average_rank: Number.NaN, rankings_count: 0 },
        { model: 'openai/gpt-4o', average_rank: Number.POSITIVE_INFINITY, rankings_count: 0 },
        { model: 'x-ai/grok-2', average_rank: Number.NEGATIVE_INFINITY, rankings_count: 0 },
      ],
    },
  };
  const assistantNoMetadata = {
    role: 'assistant',
    stage1: [{ model: 'openai/gpt-4o', response: 'Yes: at sunset the path is longer, so red dominates.' }],
    stage2: [],
    stage3: { model: 'google/gemini-2.5-pro', response: 'Sunsets are red for the same reason.' },
  };
  return [
    {
      file: `conversations/${ALPHA}/${C1}.json`,
      user: ALPHA,
      format: { indent: 2 },
      doc: {
        id: C1,
        user_id: ALPHA,
        created_at: '2024-03-05T14:07:09.123456',
        title: 'Why is the sky blue? — «ünïcödé» 😀',
        messages: [
          { role: 'user', content: 'Explain Rayleigh scattering\nin two lines, please.' },
          assistantFull,
          { role: 'user', content: 'And sunsets?' },
          assistantNoMetadata,
        ],
      },
    },
    {
      file: `conversations/${ALPHA}/${C2}.json`,
      user: ALPHA,
      format: { bom: true },
      doc: {
        id: C2,
        user_id: ALPHA,
        created_at: '2024-03-06T00:00:00.000001',
        // Strings that look like Python's bare tokens stay strings.
        title: 'Infinity',
        messages: [
          { role: 'user', content: 'NaN "Infinity" -Infinity \\ "quoted" NaN' },
          {
            role: 'assistant',
            stage1: [{ model: 'm/one', response: 'The value was NaN, or maybe Infinity: {"NaN": NaN}' }],
            stage2: [{ model: 'm/one', ranking: 'FINAL RANKING:\n1. Response A', parsed_ranking: ['Response A'] }],
            stage3: { model: 'm/chair', response: 'NaN' },
            metadata: {
              label_to_model: { 'Response A': 'm/one' },
              aggregate_rankings: [{ model: 'm/one', average_rank: Number.NaN, rankings_count: 0 }],
            },
          },
        ],
      },
    },
    {
      file: `conversations/${BETA}/${C3}.json`,
      user: BETA,
      format: { indent: 2, crlf: true },
      doc: {
        id: C3,
        user_id: BETA,
        // One microsecond before a new year: a time-zone slip moves it to another day and year.
        created_at: '2023-12-31T23:59:59.999999',
        title: 'CRLF file',
        messages: [
          { role: 'user', content: 'line one\r\nline two\n\ttabbed' },
          { ...assistantNoMetadata, stage3: { model: 'm/chair', response: 'ok\r\n' } },
        ],
      },
    },
    {
      file: `conversations/${BETA}/${C4}.json`,
      user: BETA,
      format: { indent: 2 },
      doc: { id: C4, user_id: BETA, created_at: '2024-02-29T12:00:00', title: 'New Conversation', messages: [] },
    },
  ];
}

const SEED_USAGE = [
  // Over the free daily limit: the data is what it is; import must not clamp or reject it.
  {
    user_id: ALPHA,
    daily_count: 12,
    monthly_count: 42,
    last_daily_reset: '2024-03-06',
    last_monthly_reset: '2024-03-01',
    total_queries: 1234,
    tier: 'free',
  },
  {
    user_id: BETA,
    daily_count: 0,
    monthly_count: 2999,
    last_daily_reset: '2024-02-29',
    last_monthly_reset: '2024-02-01',
    total_queries: 5000,
    tier: 'pro',
  },
  {
    user_id: GAMMA,
    daily_count: 7,
    monthly_count: 70,
    last_daily_reset: '2024-01-31',
    last_monthly_reset: '2024-01-01',
    total_queries: 70,
    tier: 'enterprise',
  },
];

async function writeSeedCorpus(dir: string): Promise<void> {
  for (const c of seedConversations()) await put(path.join(dir, c.file), pythonJson(c.doc, c.format));
  for (const u of SEED_USAGE) await put(path.join(dir, 'usage', u.user_id, 'usage.json'), pythonJson(u, { indent: 2 }));
}

/** Every entry below `dir` (symlinks not followed): type, size, mtime and sha256 — to prove import never touches the source. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const rel of (await readdir(dir, { recursive: true })).sort()) {
    const file = path.join(dir, rel);
    const stat = await lstat(file);
    const hash = stat.isFile()
      ? createHash('sha256')
          .update(await readFile(file))
          .digest('hex')
      : '-';
    out[rel] = `${stat.mode}:${stat.size}:${stat.mtimeMs}:${hash}`;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Database helpers
// ---------------------------------------------------------------------------

/** Everything the import writes to the data tables, ordered, with row versions (xmin) and identity ids. */
async function dumpTables(t: TestDatabase): Promise<string> {
  const sql = t.db.sql;
  const conversations = await sql`
    select id, user_id, title, created_at::text as created, updated_at::text as updated, message_count, xmin::text as version
      from conversations order by id`;
  const messages = await sql`
    select id::text as id, conversation_id, position, role, content, stage1_data::text as s1, stage2_data::text as s2, stage3_data::text as s3,
           metadata::text as meta, created_at::text as created, xmin::text as version
      from messages order by conversation_id, position`;
  const usage =
    await sql`select *, created_at::text as created, updated_at::text as updated, xmin::text as version from usage order by user_id`;
  return JSON.stringify({ conversations, messages, usage });
}

const SQL_UTC_MICROS = `to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')`;

// ---------------------------------------------------------------------------

describe('pgferry import / verify on real-format and hostile data', () => {
  let tmp: string;
  const databases: TestDatabase[] = [];

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'pgferry-hostile-'));
    // DATABASE_URL=embedded runs PostgreSQL as the postgres user when tests run as root: it must reach DATA_DIR.
    await chmod(tmp, 0o755);
  });
  afterEach(async () => {
    await Promise.all(databases.splice(0).map((db) => db.drop()));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  const database = async () => {
    const db = await createTestDatabase({ prefix: 'hostile' });
    databases.push(db);
    return db;
  };
  let dirs = 0;
  const newDir = async (name: string) => {
    const dir = path.join(tmp, `${name}-${++dirs}`);
    await mkdir(dir, { recursive: true });
    return dir;
  };

  // -------------------------------------------------------------------------
  // 1. Real seed-format chat data
  // -------------------------------------------------------------------------

  it('imports real seed-format files (bare NaN/Infinity, naive µs timestamps, BOM, CRLF, no metadata) exactly; verify exits 0', async () => {
    const t = await database();
    // A server whose time zone is not UTC, and a CLI process whose local zone is not UTC either:
    // naive timestamps must still be taken as UTC.
    await t.db.sql.unsafe(`alter database ${t.name} set timezone to 'America/New_York'`);
    const src = await newDir('seed');
    await writeSeedCorpus(src);
    const before = await snapshot(src);
    const report = path.join(src, '..', `seed-report-${dirs}.jsonl`);

    const run = await cli(['import', '--from', src, '--to', t.url, '--report', report], { TZ: 'Asia/Kolkata' });
    expect(run.stderr).not.toMatch(/unexpected error|at .*\.ts:\d+/);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const summary = table(run.stdout);
    expect(summary.conversations).toMatchObject({ read: 4, inserted: 4, rejected: 0 });
    expect(summary.usage).toMatchObject({ read: 3, inserted: 3, rejected: 0 });
    if (existsSync(report)) expect(errorsOf(await readReport(report))).toEqual([]);

    const sql = t.db.sql;
    const seeds = seedConversations();
    const rows = await sql<{ id: string; user_id: string; title: string; created: string; message_count: number }[]>`
      select id, user_id, title, ${sql.unsafe(SQL_UTC_MICROS)} as created, message_count from conversations order by id`;
    expect(rows).toEqual(
      [...seeds]
        .sort((a, b) => (a.doc.id < b.doc.id ? -1 : 1))
        .map((c) => ({
          id: c.doc.id,
          user_id: c.user,
          title: c.doc.title,
          created: micros(c.doc.created_at),
          message_count: c.doc.messages.length,
        })),
    );

    for (const c of seeds) {
      const messages = await sql<
        { position: number; role: string; content: string | null; stage1: unknown; stage2: unknown; stage3: unknown; metadata: unknown }[]
      >`select position, role, content, stage1_data as stage1, stage2_data as stage2, stage3_data as stage3, metadata from messages where conversation_id = ${c.doc.id} order by position`;
      expect(messages, c.file).toEqual(
        c.doc.messages.map((m, position) =>
          m.role === 'user'
            ? { position, role: 'user', content: m.content, stage1: null, stage2: null, stage3: null, metadata: null }
            : {
                position,
                role: 'assistant',
                content: null,
                stage1: tagged(m.stage1),
                stage2: tagged(m.stage2),
                stage3: tagged(m.stage3),
                metadata: m.metadata === undefined ? null : tagged(m.metadata),
              },
        ),
      );
    }

    // Through the library, the non-finite numbers are JS numbers again.
    const store = createPostgresStore({ db: t.db, tierLimits: DEFAULT_TIER_LIMITS });
    const first = await store.conversations.get(ALPHA, C1);
    expect(first.title).toBe('Why is the sky blue? — «ünïcödé» 😀');
    expect(first.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
    expect((first.messages[0] as UserMessage).content).toBe('Explain Rayleigh scattering\nin two lines, please.');
    const rankings = ((first.messages[1] as AssistantMessage).metadata as { aggregate_rankings: Array<{ average_rank: number }> })
      .aggregate_rankings;
    expect(rankings.map((r) => r.average_rank)).toEqual([1.5, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]);
    expect(Number.isNaN(rankings[1]?.average_rank)).toBe(true);
    expect((first.messages[3] as AssistantMessage).metadata).toBeUndefined();
    const second = await store.conversations.get(ALPHA, C2);
    expect(second.title).toBe('Infinity');
    expect((second.messages[0] as UserMessage).content).toBe('NaN "Infinity" -Infinity \\ "quoted" NaN');
    expect((second.messages[1] as AssistantMessage).stage3).toEqual({ model: 'm/chair', response: 'NaN' });
    const crlf = await store.conversations.get(BETA, C3);
    expect((crlf.messages[0] as UserMessage).content).toBe('line one\r\nline two\n\ttabbed');
    expect(crlf.createdAt.startsWith('2023-12-31T23:59:59.999')).toBe(true);

    const usage = await sql`
      select user_id, tier, daily_used, daily_limit, monthly_used, monthly_limit, total_queries::int as total_queries,
             last_reset_daily::text as last_reset_daily, last_reset_monthly::text as last_reset_monthly
        from usage order by user_id`;
    expect(usage).toEqual(
      [...SEED_USAGE]
        .sort((a, b) => (a.user_id < b.user_id ? -1 : 1))
        .map((u) => {
          const limits = DEFAULT_TIER_LIMITS[u.tier as keyof typeof DEFAULT_TIER_LIMITS];
          return {
            user_id: u.user_id,
            tier: u.tier,
            daily_used: u.daily_count,
            daily_limit: limits.daily,
            monthly_used: u.monthly_count,
            monthly_limit: limits.monthly,
            total_queries: u.total_queries,
            last_reset_daily: u.last_daily_reset,
            last_reset_monthly: u.last_monthly_reset,
          };
        }),
    );

    const verify = await cli(['verify', '--from', src, '--to', t.url], { TZ: 'Pacific/Chatham' });
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(table(verify.stdout).conversations).toMatchObject({ source: 4, identical: 4, missing: 0, different: 0, extra: 0 });
    expect(table(verify.stdout).usage).toMatchObject({ source: 3, identical: 3, missing: 0, different: 0, extra: 0 });
    // Import and verify never modify the source (deliverable 5).
    expect(await snapshot(src)).toEqual(before);
  });

  // -------------------------------------------------------------------------
  // 2. The original single-user layout
  // -------------------------------------------------------------------------

  it('imports the single-user layout conversations/<id>.json with --default-user, and reports it (exit 1) without', async () => {
    const src = await newDir('single');
    await put(
      path.join(src, 'conversations', 'solo-1.json'),
      pythonJson(
        {
          id: 'solo-1',
          created_at: '2024-01-15T08:30:00.5',
          title: 'From before accounts existed',
          messages: [
            { role: 'user', content: 'hello' },
            { role: 'assistant', stage1: [{ model: 'm', response: 'hi' }], stage2: [], stage3: { model: 'm', response: 'hi!' } },
          ],
        },
        { indent: 2 },
      ),
    );
    await put(
      path.join(src, 'conversations', 'solo-2.json'),
      pythonJson({ created_at: '2024-01-16T09:00:00', title: 'no id', messages: [] }),
    );

    // Without --default-user: every file reported, none dropped silently, none imported.
    const bare = await database();
    const report = path.join(tmp, `single-report-${dirs}.jsonl`);
    const without = await cli(['import', '--from', src, '--to', bare.url, '--report', report]);
    expect(without.code, without.stdout + without.stderr).toBe(1);
    expect(without.stdout + without.stderr).toContain('--default-user');
    const lines = errorsOf(await readReport(report));
    for (const file of ['conversations/solo-1.json', 'conversations/solo-2.json']) {
      const line = lines.find((l) => l.file === file);
      expect(line, `${file} in the report`).toBeDefined();
      expect(line?.reason).toContain('--default-user');
    }
    expect(table(without.stdout).conversations).toMatchObject({ read: 2, inserted: 0, rejected: 2 });
    expect((await bare.db.sql`select count(*)::int as n from conversations`)[0]?.n).toBe(0);

    // With it: owned by that user, messages in order; verify agrees.
    const t = await database();
    const run = await cli(['import', '--from', src, '--to', t.url, '--default-user', 'someone']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(table(run.stdout).conversations).toMatchObject({ read: 2, inserted: 2, rejected: 0 });
    const rows = await t.db
      .sql`select id, user_id, title, ${t.db.sql.unsafe(SQL_UTC_MICROS)} as created, message_count from conversations order by id`;
    expect(rows).toEqual([
      { id: 'solo-1', user_id: 'someone', title: 'From before accounts existed', created: '2024-01-15T08:30:00.500000', message_count: 2 },
      { id: 'solo-2', user_id: 'someone', title: 'no id', created: '2024-01-16T09:00:00.000000', message_count: 0 },
    ]);
    const verify = await cli(['verify', '--from', src, '--to', t.url, '--default-user', 'someone']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  });

  // -------------------------------------------------------------------------
  // 3 + 4. Hostile files, and the report
  // -------------------------------------------------------------------------

  describe('a source tree full of hostile files', () => {
    let src: string;
    let outside: string;
    let reportFile: string;
    let run: Run;
    let report: ReportLine[];
    let t: TestDatabase;
    let untouched: { src: Record<string, string>; outside: Record<string, string> };
    const LONG_ID = 'a'.repeat(129);
    const HUGE_TITLE = `${'Ω'.repeat(5000)}${'x'.repeat(5000)}`;
    const INJECTION_TITLE = `Robert'); DROP TABLE conversations;-- $$ \\N \\. "quoted"`;
    const INJECTION_CONTENT = [
      `'; delete from usage; --`,
      `"); TRUNCATE messages CASCADE; --`,
      '$$; select pg_sleep(30); $$',
      'tab\there, backslash \\ and \\\\ and a COPY end marker:\n\\.\nand after it',
      '\\N',
      '\r\n\\r\\n literal',
    ].join('\n');

    /** What each hostile file must come to: imported, or rejected (an error line in the report). */
    const REJECTED = [
      'conversations/u1/broken.json',
      'conversations/u2/messages-object.json',
      'conversations/u2/role-system.json',
      'conversations/bad user/in-bad-folder.json',
      'conversations/u2/a b.json',
      `conversations/u2/${LONG_ID}.json`,
      'conversations/u2/long-id.json',
      'conversations/u2/empty.json',
      'conversations/u2/null.json',
      'conversations/u2/array.json',
      'conversations/u2/string.json',
      'usage/u2/usage.json',
      'usage/u3/usage.json',
    ];

    const valid = (id: string, user: string, extra: Record<string, unknown> = {}) =>
      pythonJson(
        { id, user_id: user, created_at: '2024-05-01T10:00:00.250000', title: `title of ${id}`, messages: [], ...extra },
        { indent: 2 },
      );

    beforeAll(async () => {
      src = await newDir('hostile');
      outside = await newDir('outside');
      reportFile = path.join(tmp, `hostile-report-${dirs}.jsonl`);
      const conv = (rel: string) => path.join(src, 'conversations', rel);

      await put(conv('u1/good-1.json'), valid('good-1', 'u1', { messages: [{ role: 'user', content: 'fine' }] }));
      await put(conv('u1/broken.json'), '{"id": "broken", "user_id": "u1", "messages": [ {"role": "user", "content": "cut off');
      await put(conv('u1/no-id.json'), pythonJson({ user_id: 'u1', created_at: '2024-05-01T10:00:00', title: 'no id here', messages: [] }));
      await put(conv('u1/dup-1.json'), valid('dup-1', 'u1', { title: 'first copy' }));
      await put(conv('u2/dup-1.json'), valid('dup-1', 'u2', { title: 'second copy' }));
      await put(conv('u2/messages-object.json'), valid('messages-object', 'u2', { messages: { 0: { role: 'user', content: 'x' } } }));
      await put(conv('u2/role-system.json'), valid('role-system', 'u2', { messages: [{ role: 'system', content: 'You are…' }] }));
      await put(conv('bad user/in-bad-folder.json'), valid('in-bad-folder', 'bad user'));
      await put(conv('u2/a b.json'), pythonJson({ user_id: 'u2', created_at: '2024-05-01T10:00:00', title: 'space', messages: [] }));
      await put(
        conv(`u2/${LONG_ID}.json`),
        pythonJson({ user_id: 'u2', created_at: '2024-05-01T10:00:00', title: 'long name', messages: [] }),
      );
      await put(conv('u2/long-id.json'), valid(LONG_ID, 'u2'));
      await put(conv('u2/empty.json'), '');
      await put(conv('u2/null.json'), 'null');
      await put(conv('u2/array.json'), '[{"id": "array"}]');
      await put(conv('u2/string.json'), '"just a string"');
      await put(conv('u1/huge-title.json'), valid('huge-title', 'u1', { title: HUGE_TITLE }));
      await put(
        conv('u1/injection.json'),
        valid('injection', 'u1', {
          title: INJECTION_TITLE,
          messages: [
            { role: 'user', content: INJECTION_CONTENT },
            { role: 'user', content: '' },
            {
              role: 'assistant',
              stage1: [{ model: `m'); drop table messages; --`, response: INJECTION_CONTENT }],
              stage2: [],
              stage3: { model: '\\N', response: '\\.' },
            },
          ],
        }),
      );
      await put(conv('u2/good-2.json'), valid('good-2', 'u2'));

      // Symlinks leading outside --from: a user folder and a file.
      await put(path.join(outside, 'evil-user', 'evil-1.json'), valid('evil-1', 'evil-user'));
      await put(path.join(outside, 'evil-2.json'), valid('evil-2', 'u1'));
      await put(path.join(outside, 'usage-dir', 'usage.json'), pythonJson({ ...SEED_USAGE[0], user_id: 'evil-user' }));
      await symlink(path.join(outside, 'evil-user'), conv('evil-user'));
      await symlink(path.join(outside, 'evil-2.json'), conv('u1/evil-2.json'));
      await mkdir(path.join(src, 'usage'), { recursive: true });
      await symlink(path.join(outside, 'usage-dir'), path.join(src, 'usage', 'evil-user'));

      await put(path.join(src, 'usage/u1/usage.json'), pythonJson({ ...SEED_USAGE[0], user_id: 'u1' }));
      await put(path.join(src, 'usage/u2/usage.json'), '{"user_id": "u2", "daily_count": ');
      await put(path.join(src, 'usage/u3/usage.json'), pythonJson({ ...SEED_USAGE[0], user_id: 'u3', tier: 'gold' }));

      untouched = { src: await snapshot(src), outside: await snapshot(outside) };
      t = await createTestDatabase({ prefix: 'hostile' });
      run = await cli(['import', '--from', src, '--to', t.url, '--report', reportFile]);
      report = existsSync(reportFile) ? await readReport(reportFile) : [];
    });
    afterAll(async () => {
      await t?.drop();
    });

    const ids = async () => (await t.db.sql<{ id: string }[]>`select id from conversations order by id`).map((r) => r.id);
    const reported = (file: string) => errorsOf(report).filter((line) => line.file === file);

    it('finishes without a crash, exit code 1, and imports every valid record', async () => {
      expect(run.timedOut).toBe(false);
      expect(run.stderr).not.toMatch(/unexpected error|^\s+at /m);
      expect(run.code, run.stdout + run.stderr).toBe(1);
      expect(await ids()).toEqual(expect.arrayContaining(['good-1', 'good-2', 'injection', 'no-id']));
      expect((await t.db.sql`select user_id from usage order by user_id`).map((r) => r.user_id)).toEqual(['u1']);
    });

    it('a malformed JSON file is reported with its path; the rest is imported', async () => {
      expect(reported('conversations/u1/broken.json')).toHaveLength(1);
      expect(reported('conversations/u1/broken.json')[0]?.reason).toMatch(/JSON/i);
      expect(reported('usage/u2/usage.json')).toHaveLength(1);
      expect(run.stdout).toContain('conversations/u1/broken.json');
      expect(await ids()).not.toContain('broken');
    });

    it('a conversation without id takes the file name as id, with a warning', async () => {
      const rows = await t.db.sql`select id, user_id, title from conversations where id = 'no-id'`;
      expect(rows).toEqual([{ id: 'no-id', user_id: 'u1', title: 'no id here' }]);
      const warning = report.find((line) => line.file === 'conversations/u1/no-id.json');
      expect(warning?.severity).toBe('warning');
      expect(warning?.reason).toMatch(/id/);
    });

    it('the same conversation id in two users’ folders: both imported, the second under a derived id', async () => {
      for (const file of ['conversations/u1/dup-1.json', 'conversations/u2/dup-1.json']) expect(reported(file), file).toHaveLength(0);
      const rows = await t.db.sql`select id, user_id, title from conversations where id like 'dup-1%' order by id`;
      expect(rows).toEqual([
        { id: 'dup-1', user_id: 'u1', title: 'first copy' },
        { id: 'dup-1-dup-8eea218ebbbb6978', user_id: 'u2', title: 'second copy' },
      ]);
    });

    it('wrong types (messages not a list, role "system") are reported per record', async () => {
      expect(reported('conversations/u2/messages-object.json')[0]?.reason).toMatch(/messages/);
      expect(reported('conversations/u2/role-system.json')[0]?.reason).toMatch(/system|role/);
      expect(await ids()).not.toContain('messages-object');
      expect(await ids()).not.toContain('role-system');
    });

    it('a user folder with a space, a file name with a space and 129-character ids are rejected with a reason', async () => {
      for (const file of [
        'conversations/bad user/in-bad-folder.json',
        'conversations/u2/a b.json',
        `conversations/u2/${LONG_ID}.json`,
        'conversations/u2/long-id.json',
      ]) {
        expect(reported(file), file).toHaveLength(1);
        expect(reported(file)[0]?.reason, file).toMatch(/\bid\b|user|name/);
      }
      expect(await ids()).not.toContain('in-bad-folder');
      expect(await ids()).not.toContain(LONG_ID);
      const users = (await t.db.sql`select distinct user_id from conversations`).map((r) => r.user_id);
      expect(users).not.toContain('bad user');
    });

    it('symlinks leading outside --from are not followed (directory and file), and are reported', async () => {
      expect(await ids()).not.toContain('evil-1');
      expect(await ids()).not.toContain('evil-2');
      expect((await t.db.sql`select count(*)::int as n from conversations where user_id = 'evil-user'`)[0]?.n).toBe(0);
      expect((await t.db.sql`select count(*)::int as n from usage where user_id = 'evil-user'`)[0]?.n).toBe(0);
      expect(report.some((line) => line.file?.startsWith('conversations/evil-user'))).toBe(true);
      expect(report.some((line) => line.file === 'conversations/u1/evil-2.json')).toBe(true);
      // Nothing in the report points outside the tree by an absolute path into it.
      expect(report.some((line) => line.file?.includes(outside))).toBe(false);
    });

    it('an empty file and files holding null, an array or a string are each reported', async () => {
      expect(reported('conversations/u2/empty.json')).toHaveLength(1);
      expect(reported('conversations/u2/null.json')).toHaveLength(1);
      expect(reported('conversations/u2/array.json')).toHaveLength(1);
      expect(reported('conversations/u2/string.json')).toHaveLength(1);
    });

    it('a 10,000-character title is stored whole or reported — never truncated silently', async () => {
      const rows = await t.db.sql<{ title: string }[]>`select title from conversations where id = 'huge-title'`;
      if (rows.length === 1) expect(rows[0]?.title).toBe(HUGE_TITLE);
      else expect(reported('conversations/u1/huge-title.json')).toHaveLength(1);
    });

    it('SQL-injection and COPY-escape strings in titles, content and stage data are stored literally', async () => {
      const [conversation] = await t.db.sql`select title from conversations where id = 'injection'`;
      expect(conversation?.title).toBe(INJECTION_TITLE);
      const messages = await t.db
        .sql`select position, content, stage1_data as stage1, stage3_data as stage3 from messages where conversation_id = 'injection' order by position`;
      expect(messages).toEqual([
        { position: 0, content: INJECTION_CONTENT, stage1: null, stage3: null },
        { position: 1, content: '', stage1: null, stage3: null },
        {
          position: 2,
          content: null,
          stage1: [{ model: `m'); drop table messages; --`, response: INJECTION_CONTENT }],
          stage3: { model: '\\N', response: '\\.' },
        },
      ]);
      // The tables the strings name are still there.
      expect((await t.db.sql`select count(*)::int as n from usage`)[0]?.n).toBe(1);
    });

    it('every rejected record is in the JSON Lines report with file, record and reason (deliverable 2)', async () => {
      expect(existsSync(reportFile)).toBe(true);
      for (const line of report) {
        expect(line).toHaveProperty('file');
        expect(line).toHaveProperty('record');
        expect(typeof line.reason).toBe('string');
        expect((line.reason ?? '').length).toBeGreaterThan(5);
      }
      for (const file of REJECTED) expect(reported(file).length, `${file} in the report`).toBeGreaterThanOrEqual(1);
      // And the summary counts the same rejections as the report lists (one record per conversation file / usage file).
      const summary = table(run.stdout);
      const rejectedFiles = new Set(errorsOf(report).map((line) => line.file));
      expect((summary.conversations?.rejected ?? 0) + (summary.usage?.rejected ?? 0)).toBe(rejectedFiles.size);
      // Nothing valid was reported as an error.
      for (const file of [
        'conversations/u1/good-1.json',
        'conversations/u2/good-2.json',
        'conversations/u1/injection.json',
        'usage/u1/usage.json',
      ]) {
        expect(reported(file), file).toEqual([]);
      }
    });

    it('leaves the source tree and the files its symlinks point to untouched', async () => {
      expect(await snapshot(src)).toEqual(untouched.src);
      expect(await snapshot(outside)).toEqual(untouched.outside);
    });

    it('verify on the same tree exits 1 and lists the unreadable files, without a crash', async () => {
      const verify = await cli(['verify', '--from', src, '--to', t.url]);
      expect(verify.timedOut).toBe(false);
      expect(verify.stderr).not.toMatch(/unexpected error|^\s+at /m);
      expect(verify.code).toBe(1);
      expect(verify.stdout).toContain('conversations/u1/broken.json');
      const summary = table(verify.stdout);
      expect(summary.conversations).toMatchObject({ missing: 0, different: 0, extra: 0 });
    });
  });

  it('an unreadable --from (nonexistent path) exits 2 with a clear message', async () => {
    const missing = path.join(tmp, 'does-not-exist');
    const url = 'postgres://nobody:pw@127.0.0.1:1/nothing';
    const [imp, ver] = await Promise.all([
      cli(['import', '--from', missing, '--to', url]),
      cli(['verify', '--from', missing, '--to', url]),
    ]);
    for (const run of [imp, ver]) {
      expect(run.code, run.stdout + run.stderr).toBe(2);
      expect(run.stderr).toContain(missing);
      expect(run.stderr).toMatch(/^pgferry: .*--from/m);
      expect(run.stderr).not.toMatch(/^\s+at /m);
    }
  });

  it('--from pointing at a file, not a directory, exits 2 with a clear message', async () => {
    const file = path.join(tmp, 'a-file.json');
    await writeFile(file, '{}');
    const url = 'postgres://nobody:pw@127.0.0.1:1/nothing';
    const [imp, ver] = await Promise.all([cli(['import', '--from', file, '--to', url]), cli(['verify', '--from', file, '--to', url])]);
    for (const run of [imp, ver]) {
      expect(run.code, run.stdout + run.stderr).toBe(2);
      expect(run.stderr).toContain(file);
      expect(run.stderr).not.toMatch(/^\s+at /m);
    }
  });

  // -------------------------------------------------------------------------
  // More hostile input
  // -------------------------------------------------------------------------

  it('text PostgreSQL cannot store (NUL, unpaired surrogate) is reported per record; its neighbours are imported', async () => {
    const t = await database();
    const src = await newDir('unstorable');
    const conv = (name: string, body: Record<string, unknown>) =>
      put(
        path.join(src, 'conversations', 'u1', `${name}.json`),
        JSON.stringify({ id: name, user_id: 'u1', created_at: '2024-01-01T00:00:00', title: 't', messages: [], ...body }),
      );
    // Written as JSON escapes, exactly as Python's json.dump writes them.
    await put(
      path.join(src, 'conversations', 'u1', 'nul.json'),
      '{"id":"nul","user_id":"u1","created_at":"2024-01-01T00:00:00","title":"t","messages":[{"role":"user","content":"a\\u0000b"}]}',
    );
    await put(
      path.join(src, 'conversations', 'u1', 'nul-stage.json'),
      '{"id":"nul-stage","user_id":"u1","created_at":"2024-01-01T00:00:00","title":"t","messages":[{"role":"assistant","stage1":[{"model":"m","response":"a\\u0000b"}],"stage2":[],"stage3":{"model":"m","response":"r"}}]}',
    );
    await put(
      path.join(src, 'conversations', 'u1', 'surrogate.json'),
      '{"id":"surrogate","user_id":"u1","created_at":"2024-01-01T00:00:00","title":"t\\ud800","messages":[]}',
    );
    await conv('ok-1', { messages: [{ role: 'user', content: 'fine' }] });
    await conv('ok-2', { title: 'pair \ud83d\ude00 is fine' });
    const report = path.join(tmp, `unstorable-${dirs}.jsonl`);
    const run = await cli(['import', '--from', src, '--to', t.url, '--report', report, '--batch', '100']);
    expect(run.stderr).not.toMatch(/unexpected error/);
    expect(run.code, run.stdout + run.stderr).toBe(1);
    const ids = (await t.db.sql`select id from conversations order by id`).map((r) => r.id);
    expect(ids).toEqual(['ok-1', 'ok-2']);
    const files = errorsOf(await readReport(report)).map((line) => line.file);
    expect(files.sort()).toEqual(['conversations/u1/nul-stage.json', 'conversations/u1/nul.json', 'conversations/u1/surrogate.json']);
    const verify = await cli(['verify', '--from', src, '--to', t.url]);
    expect(table(verify.stdout).conversations).toMatchObject({ identical: 2, missing: 0, different: 0, extra: 0 });
  });

  it('a FIFO named like a conversation and a symlink loop inside --from neither hang nor crash the import', async () => {
    const t = await database();
    const src = await newDir('fifo');
    await put(
      path.join(src, 'conversations', 'u1', 'ok.json'),
      JSON.stringify({ id: 'ok', user_id: 'u1', created_at: '2024-01-01T00:00:00', title: 't', messages: [] }),
    );
    const fifo = path.join(src, 'conversations', 'u1', 'pipe.json');
    const made = await new Promise<boolean>((resolve) => {
      const child = spawn('mkfifo', [fifo], { stdio: 'ignore' });
      child.on('error', () => resolve(false));
      child.on('close', (code) => resolve(code === 0));
    });
    await symlink('..', path.join(src, 'conversations', 'u1', 'loop'));
    await symlink('.', path.join(src, 'conversations', 'u2'));
    const run = await cli(['import', '--from', src, '--to', t.url], {}, 20_000);
    expect(run.timedOut, `import hung (fifo made: ${made})`).toBe(false);
    expect(run.stderr).not.toMatch(/unexpected error/);
    expect(run.code === 0 || run.code === 1).toBe(true);
    expect((await t.db.sql`select id, user_id from conversations`).map((r) => `${r.user_id}/${r.id}`)).toEqual(['u1/ok']);
  });

  it('user data shaped like the internal float tag ({"$pgferry:float": "NaN"}) survives import unchanged', async () => {
    const t = await database();
    const src = await newDir('tag');
    const literal = { '$pgferry:float': 'NaN' };
    const escaped = { '$pgferry:object': { a: 1 } };
    await put(
      path.join(src, 'conversations', 'u1', 'tag.json'),
      JSON.stringify({
        id: 'tag',
        user_id: 'u1',
        created_at: '2024-01-01T00:00:00',
        title: 't',
        messages: [{ role: 'assistant', stage1: [], stage2: [], stage3: { model: 'm', response: 'r' }, metadata: { literal, escaped } }],
      }),
    );
    const run = await cli(['import', '--from', src, '--to', t.url]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    // The JSON backend reads this file as these objects; PostgreSQL must give back the same.
    const store = createPostgresStore({ db: t.db, tierLimits: DEFAULT_TIER_LIMITS });
    const conversation = await store.conversations.get('u1', 'tag');
    expect((conversation.messages[0] as AssistantMessage).metadata).toEqual({ literal, escaped });
  });

  it('hostile usage values (unknown tier, overflow, negative, NaN, bad date) are rejected per file with a reason', async () => {
    const t = await database();
    const src = await newDir('usage');
    const base = {
      daily_count: 1,
      monthly_count: 2,
      last_daily_reset: '2024-01-02',
      last_monthly_reset: '2024-01-01',
      total_queries: 3,
      tier: 'free',
    };
    const cases: Record<string, Record<string, unknown>> = {
      ok: {},
      gold: { tier: 'gold' },
      huge: { daily_count: 1e20 },
      negative: { monthly_count: -1 },
      fraction: { daily_count: 2.5 },
      nan: { total_queries: Number.NaN },
      baddate: { last_daily_reset: 'yesterday' },
      stringcount: { daily_count: '5' },
    };
    for (const [user, patch] of Object.entries(cases)) {
      await put(path.join(src, 'usage', user, 'usage.json'), pythonJson({ user_id: user, ...base, ...patch }));
    }
    const report = path.join(tmp, `usage-${dirs}.jsonl`);
    const run = await cli(['import', '--from', src, '--to', t.url, '--report', report]);
    expect(run.stderr).not.toMatch(/unexpected error/);
    expect(run.code, run.stdout + run.stderr).toBe(1);
    expect((await t.db.sql`select user_id from usage`).map((r) => r.user_id)).toEqual(['ok']);
    const files = new Set(errorsOf(await readReport(report)).map((line) => line.file));
    for (const user of Object.keys(cases).filter((u) => u !== 'ok')) expect(files.has(`usage/${user}/usage.json`), user).toBe(true);
  });

  it('a conversation id that appears in a second user’s folder after it was imported does not overwrite the imported one; both are kept', async () => {
    const t = await database();
    const src = await newDir('late-dup');
    await put(
      path.join(src, 'conversations', 'u1', 'shared.json'),
      JSON.stringify({
        id: 'shared',
        user_id: 'u1',
        created_at: '2024-01-01T00:00:00',
        title: 'mine',
        messages: [{ role: 'user', content: 'u1 wrote this' }],
      }),
    );
    expect((await cli(['import', '--from', src, '--to', t.url])).code).toBe(0);
    await put(
      path.join(src, 'conversations', 'u2', 'shared.json'),
      JSON.stringify({
        id: 'shared',
        user_id: 'u2',
        created_at: '2024-01-01T00:00:00',
        title: 'theirs',
        messages: [{ role: 'user', content: 'u2 took it' }],
      }),
    );
    const report = path.join(tmp, `late-dup-${dirs}.jsonl`);
    const second = await cli(['import', '--from', src, '--to', t.url, '--report', report]);
    // Both kept (records.ts duplicateReasons): u1's copy (first in path order) keeps the id, u2's gets a derived one.
    expect(second.code, second.stdout + second.stderr).toBe(0);
    expect(errorsOf(await readReport(report))).toEqual([]);
    expect(await t.db.sql`select id, user_id, title from conversations order by id`).toEqual([
      { id: 'shared', user_id: 'u1', title: 'mine' },
      { id: derivedKey('shared', 'conversations/u2/shared.json'), user_id: 'u2', title: 'theirs' },
    ]);
    expect((await t.db.sql`select content from messages order by content`).map((r) => r.content)).toEqual(['u1 wrote this', 'u2 took it']);
  });

  // -------------------------------------------------------------------------
  // 5. Idempotence
  // -------------------------------------------------------------------------

  it('a second import reports everything unchanged and changes no row', async () => {
    const t = await database();
    const src = await newDir('idempotent');
    await writeSeedCorpus(src);
    const first = await cli(['import', '--from', src, '--to', t.url]);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    const before = await dumpTables(t);

    const second = await cli(['import', '--from', src, '--to', t.url]);
    expect(second.code, second.stdout + second.stderr).toBe(0);
    const summary = table(second.stdout);
    expect(summary.conversations).toMatchObject({ read: 4, inserted: 0, updated: 0, unchanged: 4, rejected: 0 });
    expect(summary.usage).toMatchObject({ read: 3, inserted: 0, updated: 0, unchanged: 3, rejected: 0 });
    expect(second.stdout).toMatch(/nothing to change/i);
    expect(await dumpTables(t)).toBe(before);
  });

  // -------------------------------------------------------------------------
  // 6. Tampering: verify must catch each case and name the key
  // -------------------------------------------------------------------------

  describe('verify catches tampering in the database', () => {
    let src: string;
    beforeAll(async () => {
      src = await newDir('tamper');
      await writeSeedCorpus(src);
    });

    /** A fresh database with the seed corpus imported and verified clean. */
    const imported = async () => {
      const t = await database();
      const run = await cli(['import', '--from', src, '--to', t.url]);
      expect(run.code, run.stdout + run.stderr).toBe(0);
      return t;
    };
    const verify = async (t: TestDatabase) => {
      const report = path.join(tmp, `verify-${randomBytes(4).toString('hex')}.jsonl`);
      const run = await cli(['verify', '--from', src, '--to', t.url, '--report', report]);
      return { run, summary: table(run.stdout), report: existsSync(report) ? await readReport(report) : [] };
    };

    it("one message's content changed → different, named by conversation id", async () => {
      const t = await imported();
      await t.db.sql`update messages set content = 'tampered' where conversation_id = ${C1} and position = 0`;
      const { run, summary, report } = await verify(t);
      expect(run.code, run.stdout + run.stderr).toBe(1);
      expect(summary.conversations).toMatchObject({ different: 1, missing: 0, extra: 0, identical: 3 });
      expect(run.stdout).toMatch(new RegExp(`different.*${C1}`));
      expect(report.some((line) => line.record === C1)).toBe(true);
    });

    it('one conversation deleted → missing, named by id', async () => {
      const t = await imported();
      await t.db.sql`delete from conversations where id = ${C3}`;
      const { run, summary, report } = await verify(t);
      expect(run.code, run.stdout + run.stderr).toBe(1);
      expect(summary.conversations).toMatchObject({ missing: 1, different: 0, extra: 0, identical: 3 });
      expect(run.stdout).toMatch(new RegExp(`missing.*${C3}`));
      expect(report.some((line) => line.record === C3)).toBe(true);
    });

    it('one extra conversation inserted → extra, named by id', async () => {
      const t = await imported();
      await t.db
        .sql`insert into conversations (id, user_id, title, created_at, updated_at) values ('sneaky-extra', ${ALPHA}, 'not in the files', now(), now())`;
      const { run, summary, report } = await verify(t);
      expect(run.code, run.stdout + run.stderr).toBe(1);
      expect(summary.conversations).toMatchObject({ extra: 1, missing: 0, different: 0, identical: 4 });
      expect(run.stdout).toMatch(/extra.*sneaky-extra/);
      expect(report.some((line) => line.record === 'sneaky-extra')).toBe(true);
    });

    it('one usage count changed → different, named by user id', async () => {
      const t = await imported();
      await t.db.sql`update usage set monthly_used = monthly_used + 1 where user_id = ${BETA}`;
      const { run, summary, report } = await verify(t);
      expect(run.code, run.stdout + run.stderr).toBe(1);
      expect(summary.usage).toMatchObject({ different: 1, missing: 0, extra: 0, identical: 2 });
      expect(summary.conversations).toMatchObject({ different: 0, missing: 0, extra: 0 });
      expect(run.stdout).toContain(BETA);
      expect(report.some((line) => line.record === BETA)).toBe(true);
    });

    it('a NaN in stage metadata replaced by null → different', async () => {
      const t = await imported();
      await t.db
        .sql`update messages set metadata = jsonb_set(metadata, '{aggregate_rankings,1,average_rank}', 'null') where conversation_id = ${C1} and position = 1`;
      const { run, summary } = await verify(t);
      expect(run.code, run.stdout + run.stderr).toBe(1);
      expect(summary.conversations).toMatchObject({ different: 1 });
      expect(run.stdout).toContain(C1);
    });

    it('an extra message appended, or a created_at shifted by the server’s UTC offset → different', async () => {
      const t = await imported();
      await t.db
        .sql`insert into messages (conversation_id, position, role, content, created_at) values (${C2}, 2, 'user', 'injected', now())`;
      await t.db.sql`update conversations set created_at = created_at + interval '5 hours' where id = ${C4}`;
      const { run, summary } = await verify(t);
      expect(run.code, run.stdout + run.stderr).toBe(1);
      expect(summary.conversations).toMatchObject({ different: 2, identical: 2 });
      expect(run.stdout).toContain(C2);
      expect(run.stdout).toContain(C4);
    });
  });

  // -------------------------------------------------------------------------
  // 7. Secrets
  // -------------------------------------------------------------------------

  it('the password in --to never appears in stdout or stderr (success, verify, wrong password), even at debug level', async () => {
    const t = await database();
    const src = await newDir('secret');
    await writeSeedCorpus(src);
    await put(path.join(src, 'conversations', 'u9', 'broken.json'), '{');
    const role = `qa_secret_${randomBytes(4).toString('hex')}`;
    const password = `S3cr3t p@ss/wörd:${randomBytes(6).toString('hex')}`;
    const admin = postgres(adminUrl(), { max: 1, onnotice: () => {} });
    try {
      await admin.unsafe(`create role ${role} login superuser password '${password.replace(/'/g, "''")}'`);
      const url = new URL(t.url);
      url.username = role;
      url.password = encodeURIComponent(password);
      const wrong = new URL(url);
      wrong.password = encodeURIComponent(`${password}-wrong`);
      const report = path.join(tmp, `secret-${dirs}.jsonl`);
      const env = { LOG_LEVEL: 'debug' };
      const runs = [
        await cli(['import', '--from', src, '--to', url.toString(), '--report', report], env),
        await cli(['verify', '--from', src, '--to', url.toString()], env),
        await cli(['import', '--from', src, '--to', wrong.toString()], env),
        await cli(['import', '--from', src], { ...env, DATABASE_URL: url.toString() }),
        await cli(['import', '--from', path.join(src, 'missing'), '--to', url.toString()], env),
      ];
      expect(runs[0]?.code, (runs[0]?.stdout ?? '') + runs[0]?.stderr).toBe(1);
      expect(runs[2]?.code).not.toBe(0);
      const harnessPassword = decodeURIComponent(new URL(adminUrl()).password);
      const secrets = [password, encodeURIComponent(password), `${password}-wrong`, encodeURIComponent(`${password}-wrong`)];
      if (harnessPassword) secrets.push(harnessPassword);
      const outputs = [...runs.map((r) => r.stdout + r.stderr), await readFile(report, 'utf8')];
      for (const output of outputs) for (const secret of secrets) expect(output).not.toContain(secret);
      // The distinctive part alone must not leak either (e.g. a half-decoded URL).
      for (const output of outputs) expect(output).not.toMatch(/S3cr3t/);
    } finally {
      await t.db.sql.unsafe(`drop owned by ${role}`).catch(() => {});
      await t.drop();
      databases.splice(databases.indexOf(t), 1);
      await admin.unsafe(`drop role if exists ${role}`).catch(() => {});
      await admin.end();
    }
  });

  // -------------------------------------------------------------------------
  // Exit codes with DATABASE_URL=embedded
  // -------------------------------------------------------------------------

  it('with --to embedded, a run that rejected records still exits 1 (not 0)', async () => {
    const dataDir = await newDir('embedded-data');
    await chmod(dataDir, 0o755);
    const src = await newDir('embedded-src');
    await put(
      path.join(src, 'conversations', 'u1', 'ok.json'),
      JSON.stringify({ id: 'ok', user_id: 'u1', created_at: '2024-01-01T00:00:00', title: 't', messages: [] }),
    );
    await put(path.join(src, 'conversations', 'u1', 'broken.json'), '{');
    const run = await cli(['import', '--from', src, '--to', 'embedded'], { DATA_DIR: dataDir }, 60_000);
    expect(run.stdout).toMatch(/rejected/);
    expect(table(run.stdout).conversations).toMatchObject({ rejected: 1 });
    expect(run.code, run.stdout + run.stderr).toBe(1);
  });
});
