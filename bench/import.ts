/**
 * bench/import — `pgferry import` and `verify` against the server's limit (issue 4, deliverable 9).
 *
 *   npm run bench:import                          # DESIGN §11 corpus: 2,000 users × 25 conversations × ~20 messages
 *   npm run bench:import -- --scale 0.1           # a tenth of it, for a quicker run
 *   TEST_DATABASE_URL=postgres://… npm run bench:import
 *
 * Flags: --scale F (corpus size factor, default 1), --dir DIR (where the corpus
 * lives; reused when it was generated with the same parameters, kept afterwards),
 * --methods (also time the `staging` and `json` load methods), --jobs N (import
 * --jobs, default 2), --no-small (skip the small-corpus run that shows peak RSS
 * does not grow with the corpus).
 *
 * In one run, on fresh databases with the same schema:
 * (a) psql \copy of the same rows, pre-converted to the target tables (text
 *     format): the server's limit — conversion is not timed;
 * (b) `pgferry import` end to end (a child process, as a user runs it);
 * (c) one INSERT + commit per row (the seed scripts' approach) on a 5% sample,
 *     extrapolated to the whole corpus;
 * then `pgferry verify` on (b)'s database. It prints figures; it asserts nothing.
 * Targets: import ≥ 0.7× \copy (aim 0.9×) and ≥ 10× per-row; verify ≥ 50k
 * messages/s; import peak RSS < 300 MB and flat across corpus sizes.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { type Sql, withDatabase } from '../src/db/database.ts';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { Migrator } from '../src/schema/migrator.ts';
import { prepareConversation, prepareUsage } from '../src/transfer/canonical.ts';
import { selectKinds } from '../src/transfer/kinds/index.ts';
import { writeSample } from '../src/transfer/sample.ts';
import { scanSource, sourcePath } from '../src/transfer/source.ts';
import { formatTimestampUs, parseDocument, validateConversation, validateUsage } from '../src/transfer/validate.ts';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const BIN = path.join(REPO, 'bin/pgferry.js');
const PSQL = '/usr/bin/psql';

// ---------------------------------------------------------------- flags

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(name);
const option = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const SCALE = Number(option('--scale') ?? 1);
const JOBS = Number(option('--jobs') ?? 2);
const USERS = Math.max(1, Math.round(2000 * SCALE));
const CONVERSATIONS = 25;
const MESSAGES = 20;
const SAMPLE_EVERY = 20; // 5%

// ---------------------------------------------------------------- helpers

const mb = (bytes: number) => (bytes / 1_048_576).toFixed(1);
const num = (n: number) => Math.round(n).toLocaleString('en-US');
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function timed<T>(label: string, fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  process.stderr.write(`… ${label}\n`);
  const started = performance.now();
  const value = await fn();
  const ms = performance.now() - started;
  process.stderr.write(`  ${label}: ${secs(ms)}\n`);
  return { ms, value };
}

interface Child {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Peak resident set size of the process (VmHWM, sampled), MB. */
  peakRssMb: number;
}

function run(command: string, args: string[], env: Record<string, string> = {}): Promise<Child> {
  return new Promise((resolve, reject) => {
    const { DATABASE_URL: _ignored, ...base } = process.env;
    const child = spawn(command, args, { cwd: REPO, env: { ...base, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let peak = 0;
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const sample = setInterval(async () => {
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => '');
      const match = /VmHWM:\s+(\d+) kB/.exec(status);
      if (match) peak = Math.max(peak, Number(match[1]) / 1024);
    }, 100);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(sample);
      resolve({ code, stdout, stderr, peakRssMb: Math.round(peak) });
    });
  });
}

/** COPY text format escaping. */
function copyText(value: string | null): string {
  if (value === null) return '\\N';
  return value.replace(/[\\\n\r\t]/g, (ch) => (ch === '\\' ? '\\\\' : ch === '\n' ? '\\n' : ch === '\r' ? '\\r' : '\\t'));
}

async function machine(sql: Sql): Promise<string> {
  const cpu = (await readFile('/proc/cpuinfo', 'utf8').catch(() => '')).match(/model name\s*:\s*(.*)/)?.[1] ?? os.cpus()[0]?.model ?? '?';
  const [pg] = await sql<{ v: string }[]>`select current_setting('server_version') as v`;
  const load = os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  return `${cpu}, ${os.availableParallelism()} cores, ${Math.round(os.totalmem() / 2 ** 30)} GB RAM, load ${load}; Node ${process.version}; PostgreSQL ${pg?.v}`;
}

// ---------------------------------------------------------------- corpus

interface Corpus {
  dir: string;
  files: number;
  bytes: number;
  conversations: number;
  messages: number;
}

async function corpus(dir: string, users: number): Promise<Corpus> {
  const marker = path.join(dir, '.bench-corpus.json');
  const wanted = { users, conversations: CONVERSATIONS, messages: MESSAGES, seed: 1, version: 1 };
  try {
    const existing = JSON.parse(await readFile(marker, 'utf8')) as { params: typeof wanted; corpus: Corpus };
    if (JSON.stringify(existing.params) === JSON.stringify(wanted)) {
      process.stderr.write(`  reusing the corpus in ${dir}\n`);
      return existing.corpus;
    }
  } catch {
    // generate below
  }
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  let lastReport = 0;
  const result = await writeSample(dir, {
    ...wanted,
    onUser: (done, total) => {
      if (performance.now() - lastReport > 10_000) {
        lastReport = performance.now();
        process.stderr.write(`  generated ${done}/${total} users\n`);
      }
    },
  });
  const out: Corpus = { dir, files: result.files, bytes: result.bytes, conversations: result.conversations, messages: result.messages };
  await writeFile(marker, JSON.stringify({ params: wanted, corpus: out }));
  return out;
}

/**
 * The corpus as COPY text files for the three tables — exactly the rows import
 * writes (same validation, same JSON text, timestamps with microseconds).
 */
async function preconvert(dir: string, out: string): Promise<{ conversations: string; messages: string; usage: string }> {
  const files = {
    conversations: path.join(out, 'conversations.tsv'),
    messages: path.join(out, 'messages.tsv'),
    usage: path.join(out, 'usage.tsv'),
  };
  const streams = Object.fromEntries(Object.entries(files).map(([k, f]) => [k, createWriteStream(f)])) as Record<
    keyof typeof files,
    ReturnType<typeof createWriteStream>
  >;
  const put = async (stream: ReturnType<typeof createWriteStream>, line: string) => {
    if (!stream.write(line)) await once(stream, 'drain');
  };
  const scan = await scanSource(dir, selectKinds());
  for (const file of scan.files) {
    const parsed = parseDocument(await readFile(sourcePath(dir, file), 'utf8'));
    if (!parsed.ok) continue;
    if (file.kind === 'conversations') {
      const valid = validateConversation(file, parsed.value);
      if (!valid.ok) continue;
      const c = prepareConversation(valid.row, file.rel, file.size);
      if (typeof c === 'string') continue;
      await put(
        streams.conversations,
        `${copyText(c.key)}\t${copyText(c.row.userId)}\t${copyText(c.row.title)}\t${formatTimestampUs(c.row.createdUs)}\t${formatTimestampUs(c.row.updatedUs)}\t${c.messages.length}\n`,
      );
      let lines = '';
      c.messages.forEach((m, i) => {
        lines +=
          `${copyText(c.key)}\t${i}\t${m.role}\t${copyText(m.content)}\t${copyText(m.json.stage1)}\t${copyText(m.json.stage2)}\t` +
          `${copyText(m.json.stage3)}\t${copyText(m.json.metadata)}\t${formatTimestampUs(m.createdUs)}\n`;
      });
      await put(streams.messages, lines);
    } else {
      const valid = validateUsage(file, parsed.value);
      if (!valid.ok) continue;
      const u = prepareUsage(valid.row, file.rel, file.size).row;
      await put(
        streams.usage,
        `${u.userId}\t${u.tier}\t${u.dailyUsed}\t${u.monthlyUsed}\t${u.totalQueries}\t${u.lastResetDaily}\t${u.lastResetMonthly}\n`,
      );
    }
  }
  for (const stream of Object.values(streams)) {
    stream.end();
    await once(stream, 'finish');
  }
  return files;
}

/** One INSERT and one commit per row (autocommit), as the seed apps' scripts do, for every 20th conversation. */
async function perRow(url: string, dir: string): Promise<{ rows: number; messages: number; ms: number }> {
  const sql = postgres(url, { max: 1, onnotice: () => {}, connection: { TimeZone: 'UTC' } });
  const scan = await scanSource(dir, selectKinds(['conversations']));
  const sample = [...scan.files].filter((_, i) => i % SAMPLE_EVERY === 0);
  let rows = 0;
  let messages = 0;
  const started = performance.now();
  for (const file of sample) {
    const parsed = parseDocument(await readFile(sourcePath(dir, file), 'utf8'));
    if (!parsed.ok) continue;
    const valid = validateConversation(file, parsed.value);
    if (!valid.ok) continue;
    const c = prepareConversation(valid.row, file.rel, file.size);
    if (typeof c === 'string') continue;
    await sql`insert into conversations (id, user_id, title, created_at, updated_at, message_count)
              values (${c.key}, ${c.row.userId}, ${c.row.title}, ${formatTimestampUs(c.row.createdUs)}::text::timestamptz,
                      ${formatTimestampUs(c.row.updatedUs)}::text::timestamptz, ${c.messages.length})`;
    rows++;
    for (let i = 0; i < c.messages.length; i++) {
      const m = c.messages[i]!;
      await sql`insert into messages (conversation_id, position, role, content, stage1_data, stage2_data, stage3_data, metadata, created_at)
                values (${c.key}, ${i}, ${m.role}, ${m.content}, ${m.json.stage1}::text::jsonb, ${m.json.stage2}::text::jsonb,
                        ${m.json.stage3}::text::jsonb, ${m.json.metadata}::text::jsonb, ${formatTimestampUs(m.createdUs)}::text::timestamptz)`;
      rows++;
      messages++;
    }
  }
  const ms = performance.now() - started;
  await sql.end();
  return { rows, messages, ms };
}

const summaryNumber = (text: string, pattern: RegExp) => Number((pattern.exec(text)?.[1] ?? 'NaN').replace(/,/g, ''));

// ---------------------------------------------------------------- main

async function main() {
  const work = await mkdtemp(path.join(os.tmpdir(), 'pgferry-bench-import-'));
  await chmod(work, 0o755);
  const corpusDir = option('--dir') ?? path.join(work, 'corpus');
  let adminUrl = process.env.TEST_DATABASE_URL;
  let stopServer = async () => {};
  if (!adminUrl) {
    const server = await startEmbeddedPostgres({ clusterDir: path.join(work, 'cluster'), persistent: false });
    adminUrl = server.url;
    stopServer = server.stop;
  }
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  const databases: string[] = [];
  const fresh = async (name: string) => {
    const db = `bench_import_${name}_${process.pid}`;
    await admin.unsafe(`drop database if exists ${db}`);
    await admin.unsafe(`create database ${db}`);
    databases.push(db);
    const url = withDatabase(adminUrl!, db);
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    await new Migrator(sql as unknown as Sql).up();
    // Same conditions for every phase: no autovacuum of one phase's rows running during the next.
    for (const table of ['conversations', 'messages', 'usage', 'import_log'])
      await sql.unsafe(`alter table ${table} set (autovacuum_enabled = off)`);
    await sql.end();
    // …and no dirty buffers of the previous phase being written out while this one is timed.
    await admin.unsafe('checkpoint');
    return url;
  };

  try {
    const about = await machine(admin as unknown as Sql);
    const data = (
      await timed(`corpus (${USERS} users × ${CONVERSATIONS} conversations × ~${MESSAGES} messages)`, () => corpus(corpusDir, USERS))
    ).value;
    const tsv = (await timed('pre-convert rows for \\copy (not part of any figure)', () => preconvert(data.dir, work))).value;

    // (a) the server's limit
    const copyUrl = await fresh('copy');
    const copy = await timed('(a) psql \\copy', async () => {
      const result = await run(PSQL, [
        copyUrl,
        '-v',
        'ON_ERROR_STOP=1',
        '-c',
        `\\copy conversations (id, user_id, title, created_at, updated_at, message_count) from '${tsv.conversations}'`,
        '-c',
        `\\copy messages (conversation_id, position, role, content, stage1_data, stage2_data, stage3_data, metadata, created_at) from '${tsv.messages}'`,
        '-c',
        `\\copy usage (user_id, tier, daily_used, monthly_used, total_queries, last_reset_daily, last_reset_monthly) from '${tsv.usage}'`,
      ]);
      if (result.code !== 0) throw new Error(`psql failed: ${result.stderr}`);
    });

    // (b) pgferry import, end to end
    const importUrl = await fresh('pgferry');
    const imported = await timed('(b) pgferry import', () =>
      run(process.execPath, [BIN, 'import', '--from', data.dir, '--to', importUrl, '--jobs', String(JOBS)]),
    );
    if (imported.value.code !== 0)
      throw new Error(`import failed (${imported.value.code}): ${imported.value.stdout}\n${imported.value.stderr}`);
    const importRss = Math.max(imported.value.peakRssMb, summaryNumber(imported.value.stdout, /peak RSS (\d+) MB/));

    // verify on (b)'s database
    await admin.unsafe('checkpoint');
    const verified = await timed('pgferry verify', () => run(process.execPath, [BIN, 'verify', '--from', data.dir, '--to', importUrl]));
    if (verified.value.code !== 0) throw new Error(`verify failed (${verified.value.code}): ${verified.value.stdout}`);

    // (c) one INSERT + commit per row, 5% sample
    const rowUrl = await fresh('perrow');
    const rowwise = (await timed('(c) one INSERT + commit per row, 5% sample', () => perRow(rowUrl, data.dir))).value;
    const perRowMsgsPerSec = (rowwise.messages * 1000) / rowwise.ms;
    const perRowTotalMs = rowwise.ms * ((data.messages + data.conversations) / rowwise.rows);

    // other load methods, on demand
    const methods: Array<{ method: string; ms: number; rss: number }> = [{ method: 'copy', ms: imported.ms, rss: importRss }];
    if (flag('--methods')) {
      for (const method of ['staging', 'json']) {
        const url = await fresh(method);
        const r = await timed(`pgferry import --load-method ${method}`, () =>
          run(process.execPath, [BIN, 'import', '--from', data.dir, '--to', url, '--jobs', String(JOBS), '--load-method', method]),
        );
        methods.push({ method, ms: r.ms, rss: Math.max(r.value.peakRssMb, summaryNumber(r.value.stdout, /peak RSS (\d+) MB/)) });
      }
    }

    // peak RSS on a corpus a tenth the size: it should not differ
    let small: { messages: number; rss: number } | undefined;
    if (!flag('--no-small') && USERS >= 20) {
      const smallData = (await timed('small corpus (1/10)', () => corpus(path.join(work, 'small'), Math.round(USERS / 10)))).value;
      const url = await fresh('small');
      const r = await run(process.execPath, [BIN, 'import', '--from', smallData.dir, '--to', url, '--jobs', String(JOBS)]);
      small = { messages: smallData.messages, rss: Math.max(r.peakRssMb, summaryNumber(r.stdout, /peak RSS (\d+) MB/)) };
    }

    const msgsPerSec = (ms: number) => (data.messages * 1000) / ms;
    const lines = [
      '',
      'bench/import — pgferry import vs the server limit',
      `machine: ${about}`,
      `corpus:  ${num(data.conversations)} conversations in ${num(data.files)} files (${num(USERS)} users), ${num(data.messages)} messages, ${mb(data.bytes)} MB of JSON (${Math.round(data.bytes / data.messages)} bytes/message)`,
      `method:  pgferry import --jobs ${JOBS}: per batch (≤ 500 records / 4 MB) one transaction — import_log lookup, conversations upserted from arrays,`,
      '         messages COPYed (binary format) straight into the table, import_log upserted; the CLI runs the transfer in a worker thread',
      '',
      `(a) psql \\copy, pre-converted rows      ${secs(copy.ms).padStart(9)}   ${num(msgsPerSec(copy.ms)).padStart(9)} messages/s`,
      `(b) pgferry import (end to end)          ${secs(imported.ms).padStart(9)}   ${num(msgsPerSec(imported.ms)).padStart(9)} messages/s   peak RSS ${importRss} MB`,
      `(c) INSERT + commit per row (5% → all)   ${secs(perRowTotalMs).padStart(9)}   ${num(perRowMsgsPerSec).padStart(9)} messages/s   (measured ${num(rowwise.rows)} rows in ${secs(rowwise.ms)})`,
      '',
      `import / \\copy      ${(copy.ms / imported.ms).toFixed(2)}×   (target ≥ 0.7×, aim 0.9×)`,
      `import / per-row    ${(perRowTotalMs / imported.ms).toFixed(1)}×   (target ≥ 10×)`,
      `verify              ${secs(verified.ms)}, ${num(msgsPerSec(verified.ms))} messages/s, ${mb((data.bytes * 1000) / verified.ms)} MB/s of source   (target ≥ 50,000 messages/s)`,
      `import peak RSS     ${importRss} MB${small ? ` (${small.rss} MB on ${num(small.messages)} messages)` : ''}   (target < 300 MB, flat); verify peak RSS ${verified.value.peakRssMb} MB`,
    ];
    if (methods.length > 1) {
      lines.push('', 'load methods (same corpus, fresh database each):');
      for (const m of methods)
        lines.push(
          `  ${m.method.padEnd(8)} ${secs(m.ms).padStart(8)}  ${num(msgsPerSec(m.ms)).padStart(8)} messages/s  ${(copy.ms / m.ms).toFixed(2)}× \\copy  peak RSS ${m.rss} MB`,
        );
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    for (const db of databases) await admin.unsafe(`drop database if exists ${db} with (force)`).catch(() => {});
    await admin.end();
    await stopServer();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
