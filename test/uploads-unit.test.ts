import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DEFAULT_TIER_LIMITS, DEFAULT_UPLOAD_CONTENT_TYPES, loadConfig } from '../src/config.ts';
import { displayFilename, storableOriginal } from '../src/domain/uploads.ts';
import { isPgFerryError } from '../src/errors.ts';
import { contentDisposition } from '../src/objects/disposition.ts';
import { isValidObjectKey, newObjectKey } from '../src/objects/types.ts';
import { createPostgresStore } from '../src/store/postgres/index.ts';
import { bareMediaType } from '../src/uploads/service.ts';
import { createTestDatabase } from './helpers/db.ts';

describe('upload configuration', () => {
  it('UPLOAD_MAX_BYTES and UPLOAD_CONTENT_TYPES: defaults, parsing, and a CONFIG_ERROR naming the variable', () => {
    const defaults = loadConfig({});
    expect(defaults.uploads).toEqual({ maxBytes: 25 * 1024 * 1024, contentTypes: DEFAULT_UPLOAD_CONTENT_TYPES });
    const set = loadConfig({ UPLOAD_MAX_BYTES: '1000', UPLOAD_CONTENT_TYPES: ' Image/PNG , application/pdf ' });
    expect(set.uploads).toEqual({ maxBytes: 1000, contentTypes: ['image/png', 'application/pdf'] });
    for (const env of [
      { UPLOAD_MAX_BYTES: '0' },
      { UPLOAD_MAX_BYTES: 'lots' },
      { UPLOAD_CONTENT_TYPES: 'pdf' },
      { UPLOAD_CONTENT_TYPES: 'a/b;c' },
    ]) {
      try {
        loadConfig(env);
        throw new Error(`accepted ${JSON.stringify(env)}`);
      } catch (error) {
        expect(isPgFerryError(error, 'CONFIG_ERROR'), String(error)).toBe(true);
        expect((error as Error).message).toContain(Object.keys(env)[0]);
      }
    }
  });
});

describe('filenames are metadata', () => {
  it('display names: last segment, no control or bidi characters, bounded, never empty or a dot name', () => {
    expect(displayFilename('../../etc/passwd')).toBe('passwd');
    expect(displayFilename('C:\\Windows\\win.ini')).toBe('win.ini');
    expect(displayFilename('a\u0000b\r\n.pdf')).toBe('ab.pdf');
    expect(displayFilename('invoice\u202Efdp.exe')).toBe('invoicefdp.exe');
    expect(displayFilename('..')).toBe('upload');
    expect(displayFilename('dir/')).toBe('upload');
    expect(displayFilename('x'.repeat(10_000))).toHaveLength(255);
    expect(displayFilename('😀'.repeat(300))).toBe('😀'.repeat(255)); // cut by characters, never inside a pair
  });

  it('originals are kept storable (no NUL, no lone surrogate) and bounded', () => {
    expect(storableOriginal('a\u0000b')).toBe('a\uFFFDb');
    expect(storableOriginal('x\uD800y')).toBe('x\uFFFDy');
    expect(storableOriginal('n'.repeat(10_000))).toHaveLength(4096);
  });

  it('Content-Disposition never carries a quote, CR/LF or NUL, and keeps Unicode in filename*', () => {
    const header = contentDisposition('évil "name"\r\n\u0000.pdf');
    expect(header).not.toMatch(/[\r\n\u0000]/);
    expect(header).toMatch(/^attachment; filename="[^"]*"; filename\*=UTF-8''/);
    expect(header).toContain("filename*=UTF-8''%C3%A9vil%20%22name%22.pdf");
  });

  it('media types are compared bare and lower-cased', () => {
    expect(bareMediaType('Image/PNG; charset=x')).toBe('image/png');
    expect(bareMediaType(undefined)).toBe('');
  });

  it('object keys: fresh, valid, and nothing else gets through', () => {
    expect(isValidObjectKey(newObjectKey())).toBe(true);
    for (const bad of ['../a', 'a/../b', '/a', 'a//b', '.a', 'a/.b', 'a\\b', 'a b', '', 'é'])
      expect(isValidObjectKey(bad), bad).toBe(false);
  });
});

describe("seed 004's user_uploads view", () => {
  it('shows what the uploads repository records, under seed 004 names', async () => {
    const testDb = await createTestDatabase();
    const store = createPostgresStore({ db: testDb.db, tierLimits: DEFAULT_TIER_LIMITS });
    try {
      const key = `uploads/2026/12/${randomUUID()}`;
      const upload = await store.uploads.record('user@example.com', {
        filename: 'plan.pdf',
        storage: 's3',
        bucket: 'b',
        key,
        size: 42,
        contentType: 'application/pdf',
      });
      const [row] = await testDb.db
        .sql`select user_id, filename, s3_bucket, s3_key, file_size, storage from user_uploads where id = ${upload.id}::uuid`;
      expect(row).toMatchObject({ user_id: 'user@example.com', filename: 'plan.pdf', s3_bucket: 'b', s3_key: key, storage: 's3' });
      expect(Number(row?.file_size)).toBe(42);
    } finally {
      await store.close();
      await testDb.drop();
    }
  });
});
