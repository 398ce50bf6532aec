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
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { prepareConversation } from '../src/transfer/canonical.ts';
import { selectKinds } from '../src/transfer/kinds/index.ts';
import { scanSource, sourcePath } from '../src/transfer/source.ts';
import { formatTimestampUs, parseDocument, validateConversation } from '../src/transfer/validate.ts';
import {
  BenchDatabases,
  CONVERSATIONS,
  copyRows,
  corpus,
  MESSAGES,
  machine,
  mb,
  num,
  preconvert,
  REPO,
  run,
  secs,
  summaryNumber,
  timed,
} from './lib.ts';

const BIN = path.join(REPO, 'bin/pgferry.js');

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
const SAMPLE_EVERY = 20; // 5%

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
  const databases = new BenchDatabases(adminUrl);
  const fresh = (name: string) => databases.fresh(name);

  try {
    const about = await machine(databases.sql);
    const data = (
      await timed(`corpus (${USERS} users × ${CONVERSATIONS} conversations × ~${MESSAGES} messages)`, () => corpus(corpusDir, USERS))
    ).value;
    const tsv = (await timed('pre-convert rows for \\copy (not part of any figure)', () => preconvert(data.dir, work))).value;

    // (a) the server's limit
    const copyUrl = await fresh('copy');
    const copy = await timed('(a) psql \\copy', () => copyRows(copyUrl, tsv));

    // (b) pgferry import, end to end
    const importUrl = await fresh('pgferry');
    const imported = await timed('(b) pgferry import', () =>
      run(process.execPath, [BIN, 'import', '--from', data.dir, '--to', importUrl, '--jobs', String(JOBS)]),
    );
    if (imported.value.code !== 0)
      throw new Error(`import failed (${imported.value.code}): ${imported.value.stdout}\n${imported.value.stderr}`);
    const importRss = Math.max(imported.value.peakRssMb, summaryNumber(imported.value.stdout, /peak RSS (\d+) MB/));

    // verify on (b)'s database
    await databases.checkpoint();
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
    await databases.close();
    await stopServer();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
