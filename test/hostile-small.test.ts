import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TIER_LIMITS } from '../src/config.ts';
import { jsonErrorOffset, jsonParseReason } from '../src/formats/json-error.ts';
import { createLogger } from '../src/log.ts';
import { STALE_TEMP_AGE_MS } from '../src/store/json/files.ts';
import { createJsonStore } from '../src/store/json/index.ts';
import { openStore } from '../src/store/open.ts';
import type { Store } from '../src/store/types.ts';
import { terminalSafe } from '../src/transfer/summary.ts';
import { readJsonLines, runCli, write } from './fixtures/import-corpus.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * Issue 9, the small findings outside HTTP: `__proto__` keys in stage data
 * survive import and reads on both backends and verify catches their loss;
 * file names with terminal control sequences are printed escaped; a
 * malformed-file reason never quotes the file; stale temp files are removed
 * when the JSON store opens.
 */

const MARKER = 'TOP-SECRET-MARKER-8812';
const HOSTILE_NAME = 'evil\u001b]0;pwned\u0007\u001b[2J\nERROR fake line\u009b31m';

const protoConversation = `{
  "id": "proto-1",
  "user_id": "u1",
  "created_at": "2024-05-01T10:20:30.123456",
  "title": "proto",
  "messages": [
    {"role": "user", "content": "q"},
    {
      "role": "assistant",
      "stage1": [{"model": "m", "response": "r", "__proto__": {"admin": true}}],
      "stage2": [],
      "stage3": {"model": "chair", "response": "final", "__proto__": {"polluted": 1}, "constructor": {"prototype": {"x": 1}}},
      "metadata": {"__proto__": [1, 2.0], "label_to_model": {}}
    }
  ]
}`;

let tmp: string;
let src: string;
let db: TestDatabase;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-small-'));
  src = path.join(tmp, 'data');
  await write(src, 'conversations/u1/proto-1.json', protoConversation);
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.drop();
  await fs.rm(tmp, { recursive: true, force: true });
});

const ownValue = (object: unknown, key: string) => Object.getOwnPropertyDescriptor(object, key)?.value;

async function verify() {
  const report = path.join(tmp, `verify-${Math.random().toString(36).slice(2)}.jsonl`);
  const run = await runCli(['verify', '--from', src, '--to', db.url, '--report', report]);
  return { ...run, report: readJsonLines(await fs.readFile(report, 'utf8').catch(() => '')) };
}

function expectProtoKeysKept(store: Store) {
  return async () => {
    const conversation = await store.conversations.get('u1', 'proto-1');
    const assistant = conversation.messages[1] as unknown as Record<string, Record<string, unknown>>;
    expect(Object.getPrototypeOf(assistant.stage3)).toBe(Object.prototype);
    expect(ownValue(assistant.stage3, '__proto__')).toEqual({ polluted: 1 });
    expect(ownValue(assistant.stage3, 'constructor')).toEqual({ prototype: { x: 1 } });
    expect(ownValue((assistant.stage1 as unknown as unknown[])[0], '__proto__')).toEqual({ admin: true });
    expect((ownValue(assistant.metadata, '__proto__') as unknown[]).map(Number)).toEqual([1, 2]);
  };
}

describe('__proto__ and constructor keys in stored JSON', () => {
  it('import keeps them, verify passes, and every backend reads them back as own keys', async () => {
    const run = await runCli(['import', '--from', src, '--to', db.url]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const [row] = await db.db.sql`select stage3_data::text as s from messages where conversation_id = 'proto-1' and role = 'assistant'`;
    expect(row?.s).toContain('"__proto__": {"polluted": 1}');
    expect((await verify()).code).toBe(0);

    const logger = createLogger({ level: 'silent' });
    const pg = await openStore({
      env: { DATABASE_URL: db.url, STORAGE_MODE: 'postgres', ON_DB_UNAVAILABLE: 'fail' },
      logger,
      migrate: false,
    });
    const json = createJsonStore({ dataDir: src, tierLimits: DEFAULT_TIER_LIMITS });
    try {
      await expectProtoKeysKept(pg)();
      await expectProtoKeysKept(json)();
    } finally {
      await pg.close();
      await json.close();
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('verify fails when the key is removed in the database', async () => {
    const sql = db.db.sql;
    await sql`update messages set stage3_data = stage3_data - '__proto__' where conversation_id = 'proto-1' and role = 'assistant'`;
    const result = await verify();
    expect(result.code, result.stdout).toBe(1);
    expect(result.report).toEqual([expect.objectContaining({ problem: 'different', record: 'proto-1' })]);
  });
});

describe('hostile file names and contents on the terminal', () => {
  let hostile: string;
  beforeAll(async () => {
    hostile = path.join(tmp, 'hostile');
    await write(hostile, 'conversations/u1/ok-1.json', protoConversation.replace('"proto-1"', '"ok-1"'));
    await write(hostile, `conversations/u1/${HOSTILE_NAME}.json`, `{"id": "x", "title": ${MARKER} is here, "messages": []}`);
    await write(
      hostile,
      'conversations/u1/bad-string.json',
      `{"id": "bad-string", "title": "t", "created_at": "${MARKER}", "messages": []}`,
    );
  });

  it('escapes control characters in names and never quotes file contents; the report keeps the real name', async () => {
    const target = await createTestDatabase();
    try {
      const report = path.join(tmp, 'hostile.jsonl');
      const run = await runCli(['import', '--from', hostile, '--to', target.url, '--report', report]);
      expect(run.code).toBe(1);
      const output = run.stdout + run.stderr;
      expect(output).not.toMatch(/[\u001b\u0007\u009b]/);
      expect(output).not.toContain('\nERROR fake line');
      expect(run.stdout).toContain(terminalSafe(HOSTILE_NAME));
      expect(output).not.toContain(MARKER);
      const lines = readJsonLines(await fs.readFile(report, 'utf8'));
      const malformed = lines.find((line) => String(line.file).includes('evil'));
      expect(malformed).toMatchObject({
        file: `conversations/u1/${HOSTILE_NAME}.json`,
        reason: expect.stringMatching(/line 1, column 22/),
      });
      expect(JSON.stringify(lines)).not.toContain(MARKER);

      const verified = await runCli(['verify', '--from', hostile, '--to', target.url]);
      expect(verified.code).toBe(1);
      expect(verified.stdout + verified.stderr).not.toMatch(/[\u001b\u0007\u009b]/);
      expect(verified.stdout + verified.stderr).not.toContain(MARKER);
    } finally {
      await target.drop();
    }
  });

  it('the JSON backend names a corrupt file by place, not by content', async () => {
    const dir = path.join(tmp, 'corrupt');
    await write(dir, 'conversations/u1/c1.json', `{"id": "c1", "title": "t",\n "messages": [${MARKER}]}`);
    const store = createJsonStore({ dataDir: dir, tierLimits: DEFAULT_TIER_LIMITS });
    try {
      const error = await store.conversations.get('u1', 'c1').catch((e: unknown) => e as Error);
      expect(error).toMatchObject({ code: 'CORRUPT_DATA', message: expect.stringContaining('line 2, column 15') });
      expect((error as Error).message).not.toContain(MARKER);
    } finally {
      await store.close();
    }
  });

  it('locates syntax errors without recursion and escapes every terminal control', () => {
    for (const [text, offset] of [
      ['{"a": 1}', -1],
      ['{"a": NaN, "b": [-Infinity, 1.0e5]}', -1],
      ['{"a": x}', 6],
      ['{"a": 1,}', 8],
      ['[1, 2', 5],
      ['"\\q"', 1],
      ['{"a": 1} extra', 9],
      [`${'['.repeat(100_000)}${']'.repeat(100_000)}`, -1],
    ] as const) {
      expect(jsonErrorOffset(text), text.slice(0, 40)).toBe(offset);
    }
    expect(jsonParseReason(new SyntaxError(`Unexpected token, "${MARKER}" is not valid JSON`), `[${MARKER}]`)).toBe(
      'malformed JSON at line 1, column 2 (character 1)',
    );
    expect(terminalSafe('a\u001b[31mb\nc\u009bd\u202ee\tf')).toBe('a\\x1b[31mb\\nc\\x9bd\\u202ee\\tf');
    expect(terminalSafe('plain ünïcødé 🚀 name.json')).toBe('plain ünïcødé 🚀 name.json');
  });
});

describe('stale temp files', () => {
  /** The pid of a process that has exited. */
  async function deadPid(): Promise<number> {
    const child = spawn(process.execPath, ['-e', '0']);
    await new Promise((resolve) => child.on('exit', resolve));
    return child.pid!;
  }

  it('are removed when the JSON store opens; a live writer’s young temp file is kept', async () => {
    const dir = path.join(tmp, 'temps');
    const user = path.join(dir, 'conversations', 'u1');
    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    try {
      const files = {
        data: await write(user, 'c1.json', '{"id": "c1", "title": "t", "messages": []}'),
        dead: await write(user, `.c1.json.${await deadPid()}.0123456789ab.tmp`, '{"partial'),
        liveYoung: await write(user, `.c1.json.${live.pid}.abcdefabcdef.tmp`, '{"writing'),
        liveOld: await write(dir, `usage/u1/.usage.json.${live.pid}.aaaaaaaaaaaa.tmp`, '{'),
        ownYoung: await write(user, `.c2.json.${process.pid}.bbbbbbbbbbbb.tmp`, '{'),
        notOurs: await write(user, '.something.tmp', 'keep me'),
      };
      const old = new Date(Date.now() - STALE_TEMP_AGE_MS - 60_000);
      await fs.utimes(files.liveOld, old, old);
      const store = createJsonStore({ dataDir: dir, tierLimits: DEFAULT_TIER_LIMITS });
      await store.close(); // waits for the open-time sweep
      const exists = async (file: string) =>
        fs.access(file).then(
          () => true,
          () => false,
        );
      expect(await exists(files.data)).toBe(true);
      expect(await exists(files.dead)).toBe(false);
      expect(await exists(files.liveOld)).toBe(false);
      expect(await exists(files.liveYoung)).toBe(true);
      expect(await exists(files.ownYoung)).toBe(true);
      expect(await exists(files.notOurs)).toBe(true);
    } finally {
      live.kill();
    }
  });
});
