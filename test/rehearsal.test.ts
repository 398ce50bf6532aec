import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from './fixtures/import-corpus.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * The issue's "Done when": scripts/rehearsal.sh runs seed 002's five phases on
 * a sample corpus with a Python writer live during phases 1–2 (via `sync
 * --follow`), ends on PostgreSQL with verify clean and the JSON archived.
 * Here on the test's own database (the script's default is an embedded server).
 */

let db: TestDatabase;
/** The script, while it runs: stopped on a timeout, so its background sync never outlives the test. */
let script: ReturnType<typeof spawn> | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  if (script && script.exitCode === null) {
    script.kill('SIGTERM');
    await new Promise((resolve) => script?.once('close', resolve));
  }
  await db?.drop();
});

describe('scripts/rehearsal.sh', () => {
  it('runs the five phases and ends with "rehearsal: OK"', async () => {
    const { DATABASE_URL: _ignored, ...env } = process.env;
    const result = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      const child = spawn('bash', [path.join(REPO, 'scripts/rehearsal.sh')], {
        cwd: REPO,
        env: { ...env, NODE: process.execPath, DATABASE_URL: db.url, WRITER_SECONDS: '5', WRITER_RATE: '40' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      script = child;
      let out = '';
      child.stdout.on('data', (c) => {
        out += c;
      });
      child.stderr.on('data', (c) => {
        out += c;
      });
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, out }));
    });
    expect(result.code, result.out).toBe(0);
    expect(result.out).toMatch(/sync: \d+ loaded, \d+ unchanged, \d+ deleted, 0 problems/);
    expect(result.out).toContain('json files left: 0');
    expect(result.out.trim().endsWith('rehearsal: OK')).toBe(true);
  }, 300_000);
});
