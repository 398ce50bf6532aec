import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entryId } from '../src/formats/uploads-store.ts';
import { GOOD_ENTRIES, STORE_TEXT } from './fixtures/uploads-store.ts';
import { runCli } from './helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/**
 * `pgferry import --uploads-store` on a store with every REAL-FORMATS B quirk:
 * every entry in or reported, idempotent, verify clean and then catching an
 * entry edited in the store; `--files-root` checks and links the bytes.
 */

const USER = 'jeremy.estrella@gmail.com';
let tmp: string;
let store: string;
let appDir: string;
let dataDir: string;
let db: TestDatabase;
const policyBytes = randomBytes(482113);

const cli = (args: string[], env: Record<string, string> = {}) => runCli([...args, '--to', db.url], { DATA_DIR: dataDir, ...env });
const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-uploads-store-'));
  store = path.join(tmp, 'user_uploads_store.json');
  appDir = path.join(tmp, 'app');
  dataDir = path.join(tmp, 'data');
  await fs.writeFile(store, STORE_TEXT);
  const userDir = path.join(appDir, 'org/default/user', USER);
  await fs.mkdir(userDir, { recursive: true });
  await fs.writeFile(path.join(userDir, '3fa91c0b-PolicyManual2024.pdf'), policyBytes);
  await fs.writeFile(path.join(userDir, '0a0b0c0d-Twice.pdf'), 'hello');
  // A file outside the app directory that a hostile saved_path points at.
  await fs.writeFile(path.join(tmp, 'secret.txt'), 'not yours');
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.drop();
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('import --uploads-store', { timeout: 180_000 }, () => {
  it('imports every readable entry and reports the rest; keeps empty saved_path as no object', async () => {
    const dry = await cli(['import', '--uploads-store', store, '--dry-run']);
    expect(dry.stdout).toMatch(/dry run/);
    const [none] = await db.db.sql`select count(*)::int as n from uploads`;
    expect(none!.n).toBe(0);
    const run = await cli(['import', '--uploads-store', store]);
    expect(run.code, run.stdout + run.stderr).toBe(1); // two entries cannot be imported
    expect(run.stdout).toMatch(/uploads\s+│?\s*13\s/);
    const [counts] = await db.db.sql<{ n: number; no_key: number; users: number; fp_empty: number }[]>`
      select count(*)::int as n, count(*) filter (where file_key is null)::int as no_key,
             count(distinct user_id)::int as users, count(*) filter (where fingerprint = '')::int as fp_empty from uploads`;
    expect(counts).toEqual({ n: GOOD_ENTRIES, no_key: 7, users: 2, fp_empty: 1 }); // 4 empty saved_path, 1 hostile, 2 from before saved_path existed
    const [standards] = await db.db.sql<{ s: unknown }[]>`select unique_standards as s from upload_user_standards where user_id = ${USER}`;
    expect(standards!.s).toEqual(['HLC.2.B', 'SACSCOC.8.2.a', 'HLC.3.C.1', 'HLC.2.A', 'HLC.3.C']);
    const [unknown] = await db.db.sql`select count(*)::int as n from upload_user_standards where user_id = 'unknown'`;
    expect(unknown!.n).toBe(1);
    const [analysed] = await db.db.sql<{ metadata: Record<string, unknown>; standards_mapped: unknown }[]>`
      select metadata, standards_mapped from uploads where id = ${entryId(USER, 'Policy Manual (2024).pdf', '2025-09-24T14:21:09.530771', 0)}`;
    expect(analysed!.metadata).toMatchObject({ generation: 'D4', saved_path: '', trust_score: { trust_level: 'medium' } });
    expect(analysed!.standards_mapped).toEqual(['HLC.2.A', 'HLC.2.B']);
    expect(run.stdout).toMatch(/filename/);
  });

  it('a second run changes nothing; verify is clean', async () => {
    const again = await cli(['import', '--uploads-store', store]);
    expect(again.stdout).toMatch(/unchanged/);
    const [log] = await db.db.sql`select count(*)::int as n from import_log where kind = 'upload'`;
    expect(log!.n).toBe(GOOD_ENTRIES);
    const [n] = await db.db.sql`select count(*)::int as n from uploads`;
    expect(n!.n).toBe(GOOD_ENTRIES);
    const verified = await cli(['verify', '--uploads-store', store]);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    expect(verified.stdout).toMatch(/OK/);
  });

  it('verify catches an entry changed in the store; a re-import updates it', async () => {
    const doc = JSON.parse(STORE_TEXT) as Record<string, { documents: Array<Record<string, unknown>> }>;
    const assessment = doc[USER]!.documents[1]!;
    (assessment.mappings as Array<{ rationale_spans: string[] }>)[0]!.rationale_spans.push('an annotation added later');
    const edited = path.join(tmp, 'edited.json');
    await fs.writeFile(edited, JSON.stringify(doc, null, 2));
    const verified = await cli(['verify', '--uploads-store', edited]);
    expect(verified.code).toBe(1);
    expect(verified.stdout).toMatch(/different .*\[1\].*metadata differs/);
    const imported = await cli(['import', '--uploads-store', edited]);
    expect(imported.stdout).toMatch(/updated/);
    const [row] = await db.db.sql<{ n: number }[]>`select count(*)::int as n from import_log where kind = 'upload' and status = 'updated'`;
    expect(row!.n).toBe(1);
    expect((await cli(['verify', '--uploads-store', edited])).code).toBe(0);
    await cli(['import', '--uploads-store', store]);
  });

  it('--files-root checks and links the bytes; a missing file is reported; a hostile path is never read', async () => {
    const run = await cli(['import', '--uploads-store', store, '--files-root', appDir]);
    expect(run.stdout).toMatch(/object missing/);
    const rows = await db.db.sql<
      { id: string; filename: string; sha256: string | null; file_size: number; file_key: string | null; storage: string }[]
    >`
      select id::text as id, filename, sha256, file_size, file_key, storage from uploads where file_key is not null order by filename, id`;
    const policy = rows.find((r) => r.filename === 'Policy Manual (2024).pdf')!;
    expect(policy.sha256).toBe(sha(policyBytes));
    expect(policy.file_size).toBe(482113);
    // Linked bytes get a key pgferry chose (a saved_path holds an e-mail); the saved_path stays in metadata.
    expect(policy).toMatchObject({ storage: 'local', file_key: `uploads-store/${policy.id}` });
    const stored = await fs.readFile(path.join(dataDir, 'files', policy.file_key!));
    expect(sha(stored)).toBe(sha(policyBytes));
    expect(rows.filter((r) => r.filename === 'Twice.pdf').map((r) => r.sha256)).toEqual([
      sha(Buffer.from('hello')),
      sha(Buffer.from('hello')),
    ]);
    expect(rows.find((r) => r.filename === 'scan.pdf')).toMatchObject({ sha256: null, storage: 'external' });
    expect(rows.some((r) => r.filename === 'Escape.pdf')).toBe(false);
    // verify is about the entries, not where their bytes are: still clean.
    expect((await cli(['verify', '--uploads-store', store])).code).toBe(0);
  });

  it('an unparsable store is an error and nothing is emptied; no file is a usage error', async () => {
    const broken = path.join(tmp, 'broken.json');
    await fs.writeFile(broken, STORE_TEXT.slice(0, 500));
    const run = await cli(['import', '--uploads-store', broken]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/malformed JSON.*nothing imported/);
    expect(run.stderr).not.toMatch(/at .*\.ts:\d+/);
    const [n] = await db.db.sql`select count(*)::int as n from uploads`;
    expect(n!.n).toBe(GOOD_ENTRIES);
    const none = await cli(['import', '--uploads-store']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/USER_UPLOADS_STORE/);
    const fromEnv = await cli(['verify', '--uploads-store'], { USER_UPLOADS_STORE: store });
    expect(fromEnv.code, fromEnv.stdout + fromEnv.stderr).toBe(0);
  });
});
