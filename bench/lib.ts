/**
 * What bench/import.ts and bench/compare.ts share: the corpus (generated once,
 * reused when its parameters match), child processes timed with their peak
 * RSS, fresh databases with autovacuum off, and the psql \copy of the same
 * rows (the server's limit).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { type Sql, withDatabase } from '../src/db/database.ts';
import { Migrator } from '../src/schema/migrator.ts';
import { prepareConversation, prepareUsage } from '../src/transfer/canonical.ts';
import { selectKinds } from '../src/transfer/kinds/index.ts';
import { writeSample } from '../src/transfer/sample.ts';
import { scanSource, sourcePath } from '../src/transfer/source.ts';
import { formatTimestampUs, parseDocument, validateConversation, validateUsage } from '../src/transfer/validate.ts';

export const REPO = fileURLToPath(new URL('../', import.meta.url));
export const PSQL = '/usr/bin/psql';
export const CONVERSATIONS = 25;
export const MESSAGES = 20;

export const mb = (bytes: number) => (bytes / 1_048_576).toFixed(1);
export const num = (n: number) => Math.round(n).toLocaleString('en-US');
export const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export async function timed<T>(label: string, fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  process.stderr.write(`… ${label}\n`);
  const started = performance.now();
  const value = await fn();
  const ms = performance.now() - started;
  process.stderr.write(`  ${label}: ${secs(ms)}\n`);
  return { ms, value };
}

export interface Child {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Peak resident set size of the process (VmHWM, sampled), MB. */
  peakRssMb: number;
}

export function run(command: string, args: string[], env: Record<string, string> = {}, cwd = REPO): Promise<Child> {
  return new Promise((resolve, reject) => {
    const { DATABASE_URL: _ignored, ...base } = process.env;
    const child = spawn(command, args, { cwd, env: { ...base, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
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
export function copyText(value: string | null): string {
  if (value === null) return '\\N';
  return value.replace(/[\\\n\r\t]/g, (ch) => (ch === '\\' ? '\\\\' : ch === '\n' ? '\\n' : ch === '\r' ? '\\r' : '\\t'));
}

export async function machine(sql: Sql): Promise<string> {
  const cpu = (await readFile('/proc/cpuinfo', 'utf8').catch(() => '')).match(/model name\s*:\s*(.*)/)?.[1] ?? os.cpus()[0]?.model ?? '?';
  const [pg] = await sql<{ v: string }[]>`select current_setting('server_version') as v`;
  const load = os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  return `${cpu}, ${os.availableParallelism()} cores, ${Math.round(os.totalmem() / 2 ** 30)} GB RAM, load ${load}; Node ${process.version}; PostgreSQL ${pg?.v}`;
}

// ---------------------------------------------------------------- corpus

export interface Corpus {
  dir: string;
  files: number;
  bytes: number;
  conversations: number;
  messages: number;
}

export async function corpus(dir: string, users: number): Promise<Corpus> {
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
export async function preconvert(dir: string, out: string): Promise<{ conversations: string; messages: string; usage: string }> {
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

/** Admin connection to a server, and fresh databases on it that are dropped at the end. */
export class BenchDatabases {
  private readonly admin: postgres.Sql;
  private readonly names: string[] = [];
  readonly adminUrl: string;

  constructor(adminUrl: string) {
    this.adminUrl = adminUrl;
    this.admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  }

  get sql(): Sql {
    return this.admin as unknown as Sql;
  }

  /**
   * A new database with the schema: this checkout's migrations, or (`migrate`)
   * a command that applies another checkout's. Autovacuum is off on the
   * transfer's tables, so no phase's rows are vacuumed during the next one, and
   * a checkpoint writes out the previous phase's dirty buffers first.
   */
  async fresh(name: string, migrate?: (url: string) => Promise<void>): Promise<string> {
    const db = `bench_${name}_${process.pid}`;
    await this.admin.unsafe(`drop database if exists ${db}`);
    await this.admin.unsafe(`create database ${db}`);
    this.names.push(db);
    const url = withDatabase(this.adminUrl, db);
    if (migrate) await migrate(url);
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    if (!migrate) await new Migrator(sql as unknown as Sql).up();
    for (const table of ['conversations', 'messages', 'usage', 'import_log'])
      await sql.unsafe(`alter table ${table} set (autovacuum_enabled = off)`);
    await sql.end();
    await this.checkpoint();
    return url;
  }

  async checkpoint(): Promise<void> {
    await this.admin.unsafe('checkpoint');
  }

  /** Drop every database made so far (a long comparison would otherwise fill the disk). */
  async dropAll(): Promise<void> {
    for (const db of this.names.splice(0)) await this.admin.unsafe(`drop database if exists ${db} with (force)`).catch(() => {});
  }

  async close(): Promise<void> {
    await this.dropAll();
    await this.admin.end();
  }
}

/** psql \copy of the pre-converted rows into a fresh database (this checkout's schema): the server's limit. */
export async function copyRows(url: string, tsv: { conversations: string; messages: string; usage: string }): Promise<void> {
  const result = await run(PSQL, [
    url,
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
}

export const summaryNumber = (text: string, pattern: RegExp) => Number((pattern.exec(text)?.[1] ?? 'NaN').replace(/,/g, ''));
