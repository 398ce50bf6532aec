import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UploadInput } from '../../src/domain/uploads.ts';
import type { Store } from '../../src/store/types.ts';
import { expectCode } from '../helpers/expect.ts';
import { TestClock } from './clock.ts';
import { CONTRACT_LIMITS, type HarnessFactory } from './store-contract.ts';

/**
 * The uploads repository's contract: every backend runs exactly these
 * (beside the Store contract of store-contract.ts, which it shares the harness of).
 */

let counter = 0;
const newUser = (label = 'up') => `${label}-${process.pid}-${++counter}-${Math.random().toString(36).slice(2, 8)}`;
const sha = (c: string) => c.repeat(64);

const sample = (over: Partial<UploadInput> = {}): UploadInput => ({
  filename: 'report.pdf',
  storage: 'local',
  key: `uploads/2026/12/${randomUUID()}`,
  contentType: 'application/pdf',
  size: 1234,
  sha256: sha('a'),
  ...over,
});

export function runUploadsContract(label: string, factory: HarnessFactory): void {
  describe(`uploads contract: ${label}`, () => {
    const clock = new TestClock();
    let store: Store;
    let cleanup: () => Promise<void>;

    beforeAll(async () => {
      ({ store, cleanup } = await factory({ clock, tierLimits: CONTRACT_LIMITS }));
    });
    afterAll(async () => {
      await store?.close();
      await cleanup?.();
    });

    it('record then get returns every field; defaults are filled', async () => {
      const user = newUser();
      const recorded = await store.uploads.record(
        user,
        sample({ docType: 'ISO', standardsMapped: ['ISO 9001'], metadata: { trust_score: 0.5 } }),
      );
      expect(recorded).toMatchObject({
        userId: user,
        filename: 'report.pdf',
        originalFilename: 'report.pdf',
        storage: 'local',
        size: 1234,
        sha256: sha('a'),
        docType: 'ISO',
        uploadType: 'document',
        isPublic: false,
        status: 'active',
        standardsMapped: ['ISO 9001'],
        metadata: { trust_score: 0.5 },
      });
      expect(recorded.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(await store.uploads.get(user, recorded.id)).toEqual(recorded);
    });

    it('another user sees NOT_FOUND for get, delete and setStandards, and nothing in list', async () => {
      const owner = newUser();
      const other = newUser();
      const upload = await store.uploads.record(owner, sample());
      await expectCode(store.uploads.get(other, upload.id), 'NOT_FOUND');
      await expectCode(store.uploads.delete(other, upload.id), 'NOT_FOUND');
      await expectCode(store.uploads.setStandards(other, upload.id, ['x']), 'NOT_FOUND');
      expect((await store.uploads.list(other)).items).toEqual([]);
      expect((await store.uploads.get(owner, upload.id)).standardsMapped).toBeNull();
    });

    it('a given id is kept; the same id again is CONFLICT', async () => {
      const user = newUser();
      const id = randomUUID();
      expect((await store.uploads.record(user, sample({ id }))).id).toBe(id);
      await expectCode(store.uploads.record(user, sample({ id })), 'CONFLICT');
    });

    it('hostile filenames are metadata only: display name cleaned, original kept (bounded)', async () => {
      const user = newUser();
      const hostile = [`../../etc/passwd`, 'a\u0000b.pdf', 'x'.repeat(10_000), 'invoice\u202Efdp.exe', '..', 'C:\\Windows\\evil.dll'];
      for (const filename of hostile) {
        const upload = await store.uploads.record(user, sample({ filename }));
        expect(upload.filename).not.toMatch(/[/\\\u0000\u202E]/);
        expect(upload.filename.length).toBeLessThanOrEqual(255);
        expect(upload.filename.length).toBeGreaterThan(0);
        expect(upload.originalFilename?.length).toBeLessThanOrEqual(4096);
        expect(upload.key).toMatch(/^uploads\//);
      }
      const [first] = (await store.uploads.list(user, { limit: 100 })).items.filter((u) => u.originalFilename === '../../etc/passwd');
      expect(first?.filename).toBe('passwd');
    });

    it('bad input is INVALID_INPUT: ids, keys, sizes, hashes, unknown fields, bad user', async () => {
      const user = newUser();
      await expectCode(store.uploads.get(user, 'not-a-uuid'), 'INVALID_INPUT');
      await expectCode(store.uploads.get('../x', randomUUID()), 'INVALID_INPUT');
      await expectCode(store.uploads.record(user, sample({ key: '../escape' })), 'INVALID_INPUT');
      await expectCode(store.uploads.record(user, sample({ size: -1 })), 'INVALID_INPUT');
      await expectCode(store.uploads.record(user, sample({ sha256: 'zz' })), 'INVALID_INPUT');
      await expectCode(store.uploads.record(user, { ...sample(), bogus: 1 } as UploadInput), 'INVALID_INPUT');
      await expectCode(store.uploads.record(user, sample({ docType: 'a\u0000b' })), 'INVALID_INPUT');
      await expectCode(store.uploads.list(user, { cursor: 'nope' }), 'INVALID_INPUT');
      await expectCode(store.uploads.list(user, { since: 'yesterday' }), 'INVALID_INPUT');
    });

    it('list: newest first, paginated by cursor without repeats or gaps, filtered by docType, uploadType and since', async () => {
      const user = newUser();
      const ids: string[] = [];
      for (let i = 0; i < 7; i++) {
        const upload = await store.uploads.record(
          user,
          sample({
            uploadedAt: new Date(Date.UTC(2026, 0, 1 + i)).toISOString(),
            docType: i % 2 ? 'ISO' : 'NIST',
            uploadType: i === 6 ? 'image' : 'document',
          }),
        );
        ids.push(upload.id);
      }
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await store.uploads.list(user, { limit: 3, cursor });
        seen.push(...page.items.map((u) => u.id));
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      expect(seen).toEqual([...ids].reverse());
      expect((await store.uploads.list(user, { docType: 'ISO' })).items.map((u) => u.id)).toEqual([ids[5], ids[3], ids[1]]);
      expect((await store.uploads.list(user, { uploadType: 'image' })).items.map((u) => u.id)).toEqual([ids[6]]);
      expect((await store.uploads.list(user, { since: '2026-01-06T00:00:00Z' })).items.map((u) => u.id)).toEqual([ids[6], ids[5]]);
    });

    it('delete marks the row (returned with its key) and hides it; a second delete is NOT_FOUND', async () => {
      const user = newUser();
      const upload = await store.uploads.record(user, sample());
      const deleted = await store.uploads.delete(user, upload.id);
      expect(deleted).toMatchObject({ id: upload.id, status: 'deleted', key: upload.key });
      await expectCode(store.uploads.get(user, upload.id), 'NOT_FOUND');
      expect((await store.uploads.list(user)).items).toEqual([]);
      await expectCode(store.uploads.delete(user, upload.id), 'NOT_FOUND');
    });

    it('setStandards replaces standards_mapped', async () => {
      const user = newUser();
      const upload = await store.uploads.record(user, sample());
      const updated = await store.uploads.setStandards(user, upload.id, { ISO: ['27001'], score: 2.5 });
      expect(updated.standardsMapped).toEqual({ ISO: ['27001'], score: 2.5 });
      expect((await store.uploads.get(user, upload.id)).standardsMapped).toEqual({ ISO: ['27001'], score: 2.5 });
    });

    it('pending uploads: not listed until complete sets size and sha256; complete twice is NOT_FOUND', async () => {
      const user = newUser();
      const pending = await store.uploads.record(user, sample({ status: 'pending', size: 0, sha256: null }));
      expect((await store.uploads.list(user)).items).toEqual([]);
      expect((await store.uploads.get(user, pending.id)).status).toBe('pending');
      const done = await store.uploads.complete(user, pending.id, { size: 77, sha256: sha('b') });
      expect(done).toMatchObject({ status: 'active', size: 77, sha256: sha('b') });
      expect((await store.uploads.list(user)).items.map((u) => u.id)).toEqual([pending.id]);
      await expectCode(store.uploads.complete(user, pending.id, { size: 77, sha256: sha('b') }), 'NOT_FOUND');
    });

    it('an entry without bytes (seed 000’s empty saved_path) is a row with no key, many times over', async () => {
      const user = newUser();
      await store.uploads.record(user, sample({ key: null, storage: 'external', filename: 'same.pdf' }));
      await store.uploads.record(user, sample({ key: null, storage: 'external', filename: 'same.pdf' }));
      const items = (await store.uploads.list(user)).items;
      expect(items).toHaveLength(2);
      expect(items.every((u) => u.key === null)).toBe(true);
    });
  });
}
