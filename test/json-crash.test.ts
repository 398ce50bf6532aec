import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TierLimits } from '../src/config.ts';
import { parseJsonText } from '../src/formats/json-text.ts';
import { isDataFileName } from '../src/store/json/files.ts';
import { createJsonStore } from '../src/store/json/index.ts';

/**
 * Concurrency and crash safety of the JSON backend, with real processes:
 * quotas stay exact under 200 concurrent callers in one process and across
 * 4 processes, appends from 4 processes are all kept, and a writer killed
 * with SIGKILL at random moments never leaves a torn file or loses a write
 * it acknowledged.
 */

const CHILD = path.join(import.meta.dirname, 'fixtures', 'json-child.ts');
const unlimited = { daily: null, monthly: null };
const dailyTen: TierLimits = { free: { daily: 10, monthly: null }, pro: unlimited, enterprise: unlimited };

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-json-crash-'));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

interface Child {
  process: ChildProcess;
  /** Every stdout line so far. */
  lines: string[];
  /** Resolves when a line satisfying `test` has been printed. */
  waitFor(test: (line: string) => boolean): Promise<void>;
  exited: Promise<number | null>;
}

function startChild(task: Record<string, unknown>): Child {
  const child = spawn(process.execPath, [CHILD, JSON.stringify({ dataDir, ...task })], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters: Array<{ test: (line: string) => boolean; resolve: () => void }> = [];
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    lines.push(line);
    for (const waiter of waiters.filter((w) => w.test(line))) waiter.resolve();
  });
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code, signal) => {
      if (code !== 0 && signal === null) console.error(`child failed (${code}): ${stderr}`);
      resolve(code);
    });
  });
  return {
    process: child,
    lines,
    exited,
    waitFor: (test) =>
      lines.some(test)
        ? Promise.resolve()
        : new Promise<void>((resolve, reject) => {
            waiters.push({ test, resolve });
            exited.then(() => (lines.some(test) ? resolve() : reject(new Error(`child exited early: ${stderr}`))));
          }),
  };
}

/** Start children together: each waits on stdin after printing "ready". */
async function runTogether(tasks: Array<Record<string, unknown>>): Promise<Child[]> {
  const children = tasks.map(startChild);
  await Promise.all(children.map((c) => c.waitFor((line) => line === 'ready')));
  for (const child of children) child.process.stdin?.end('go\n');
  const codes = await Promise.all(children.map((c) => c.exited));
  expect(codes).toEqual(tasks.map(() => 0));
  return children;
}

const lastJson = (child: Child) => JSON.parse(child.lines.at(-1) as string) as Record<string, number>;

/** Every data file below DATA_DIR parses (temp files, which readers ignore, may be torn). */
async function expectAllFilesParse(): Promise<number> {
  const entries = await readdir(dataDir, { withFileTypes: true, recursive: true });
  const files = entries.filter((e) => e.isFile() && isDataFileName(e.name)).map((e) => path.join(e.parentPath, e.name));
  for (const file of files) {
    const text = await readFile(file, 'utf8');
    expect(() => parseJsonText(text), file).not.toThrow();
  }
  return files.length;
}

describe('JSON store: concurrency', () => {
  it('200 concurrent consume calls at a daily limit of 10 allow exactly 10', async () => {
    const store = createJsonStore({ dataDir, tierLimits: dailyTen });
    const results = await Promise.all(Array.from({ length: 200 }, () => store.usage.consume('u1')));
    expect(results.filter((r) => r.allowed)).toHaveLength(10);
    expect(await store.usage.get('u1')).toMatchObject({ daily: { used: 10, remaining: 0 }, totalQueries: 10 });
    await store.close();
  });

  it('4 processes × 50 concurrent consume calls at a daily limit of 10 allow exactly 10 in total', async () => {
    const children = await runTogether(Array.from({ length: 4 }, () => ({ mode: 'consume', userId: 'u1', count: 50, daily: 10 })));
    const allowed = children.map((c) => lastJson(c).allowed ?? 0);
    expect(allowed.reduce((a, b) => a + b, 0)).toBe(10);
    const raw = parseJsonText(await readFile(path.join(dataDir, 'usage/u1/usage.json'), 'utf8'));
    expect(raw).toMatchObject({ daily_count: 10, monthly_count: 10, total_queries: 10 });
  });

  it('4 processes appending to one conversation lose no message', async () => {
    const store = createJsonStore({ dataDir, tierLimits: dailyTen });
    await store.conversations.create('u1', { id: 'shared' });
    const perChild = 25;
    await runTogether(
      ['a', 'b', 'c', 'd'].map((tag) => ({ mode: 'append', userId: 'u1', conversationId: 'shared', count: perChild, concurrency: 4, tag })),
    );
    const conversation = await store.conversations.get('u1', 'shared');
    const contents = conversation.messages.map((m) => (m.role === 'user' ? m.content : ''));
    const expected = ['a', 'b', 'c', 'd'].flatMap((tag) => Array.from({ length: perChild }, (_, k) => `${tag}-${k}`));
    expect(contents.toSorted()).toEqual(expected.toSorted());
    expect(conversation.messages.map((m) => m.position)).toEqual(expected.map((_, i) => i));
    expect(new Set(contents).size).toBe(4 * perChild);
    // The processes really ran at the same time and took turns (the lock is fair enough that
    // one process's queue does not hold it to the end): their messages interleave, not four blocks.
    const switches = contents.filter((content, i) => i > 0 && content[0] !== contents[i - 1]?.[0]).length;
    expect(switches).toBeGreaterThanOrEqual(10);
    await store.close();
  });
});

/** A lock file left behind means the writer died between taking the lock and releasing it: mid-write. */
async function killedInsideAWrite(): Promise<boolean> {
  const entries = await readdir(dataDir, { recursive: true });
  return entries.some((name) => name.endsWith('.lock'));
}

describe('JSON store: kill -9', () => {
  it('a writer killed 20 times mid-stream leaves every file parseable and every acknowledged write present', async () => {
    const store = createJsonStore({ dataDir, tierLimits: { free: unlimited, pro: unlimited, enterprise: unlimited } });
    await store.conversations.create('u1', { id: 'main' });
    const acked = { append: new Set<string>(), create: new Set<string>(), consume: 0 };
    let next = 0;
    let killedWithWritesInFlight = 0;
    let killedInsideWrites = 0;

    for (let round = 0; round < 20; round++) {
      const child = startChild({ mode: 'writer', userId: 'u1', conversationId: 'main', start: next });
      await child.waitFor((line) => line === 'ready');
      // A random moment: every fourth writer right after start (maybe before its first write), the others once writing.
      if (round % 4 !== 0) await child.waitFor((line) => line.startsWith('ack '));
      await new Promise((resolve) => setTimeout(resolve, Math.random() * (round % 4 === 0 ? 50 : 100)));
      child.process.kill('SIGKILL');
      await child.exited;
      if (await killedInsideAWrite()) killedInsideWrites++;
      const acks = child.lines.filter((l) => l.startsWith('ack ')).map((l) => l.split(' '));
      for (const [, k, kind, id] of acks) {
        if (kind === 'append') acked.append.add(`m${k}`);
        else if (kind === 'create') acked.create.add(id as string);
        else acked.consume++;
      }
      const last = acks.at(-1);
      // The next writer starts past anything this one may have written without acknowledging.
      next = (last ? Number(last[1]) : next) + 10;
      if (acks.length > 0) killedWithWritesInFlight++;

      await expectAllFilesParse();
      const conversation = await store.conversations.get('u1', 'main');
      const present = new Set(conversation.messages.map((m) => (m.role === 'user' ? m.content.split(' ')[0] : '')));
      for (const key of acked.append) expect(present.has(key), `acknowledged ${key} missing after round ${round}`).toBe(true);
      for (const id of acked.create) expect((await store.conversations.get('u1', id)).id).toBe(id);
      expect((await store.usage.get('u1')).totalQueries).toBeGreaterThanOrEqual(acked.consume);
    }

    console.log(
      `kill -9: ${killedWithWritesInFlight}/20 writers had acknowledged writes, ${killedInsideWrites}/20 died holding a lock; ` +
        `${acked.append.size} appends, ${acked.create.size} creates, ${acked.consume} consumes acknowledged`,
    );
    expect(killedWithWritesInFlight).toBeGreaterThanOrEqual(15);
    expect(killedInsideWrites).toBeGreaterThan(0);
    expect(acked.append.size).toBeGreaterThan(20);
    // Lock files of killed writers are broken (their pid is dead): this process can still write at once.
    const started = Date.now();
    await store.conversations.addUserMessage('u1', 'main', 'after the crashes');
    await store.usage.consume('u1');
    expect(Date.now() - started).toBeLessThan(2000);
    await store.close();
  });
});
