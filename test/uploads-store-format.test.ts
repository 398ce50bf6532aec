import { describe, expect, it } from 'vitest';
import { parseJsonText } from '../src/formats/json-text.ts';
import { entryId, readUploadsStore, UploadsStoreShapeError, unsafeKeyReason } from '../src/formats/uploads-store.ts';
import { GOOD_ENTRIES, STORE_TEXT } from './fixtures/uploads-store.ts';

const read = () => readUploadsStore(parseJsonText(STORE_TEXT));

describe('seed 000 upload store reader', () => {
  it('reads every entry or reports it', () => {
    const content = read();
    expect(content.entries).toHaveLength(GOOD_ENTRIES);
    expect(content.problems.map((p) => [p.userKey, p.index])).toEqual([
      ['jeremy.estrella@gmail.com', 8],
      ['e144cf90-d8ed-4277-bf12-3d86443e2099', 2],
      ['broken@example.com', null],
    ]);
    expect(content.problems[0]!.reason).toMatch(/filename/);
    expect(content.users.map((u) => u.userKey)).toEqual(['jeremy.estrella@gmail.com', 'e144cf90-d8ed-4277-bf12-3d86443e2099', 'unknown']);
  });

  it('tells the four generations apart', () => {
    const gens = read()
      .entries.filter((e) => e.userKey.startsWith('jeremy'))
      .slice(0, 4)
      .map((e) => e.generation);
    expect(gens).toEqual(['D1', 'D2', 'D4', 'D4']);
    expect(read().entries.find((e) => e.filename === 'scan.pdf')!.generation).toBe('D3');
  });

  it('keeps an empty saved_path as "no object", never as a key', () => {
    const noObject = read().entries.filter((e) => e.metadata.saved_path === '');
    expect(noObject.length).toBe(4);
    for (const entry of noObject) expect(entry.fileKey).toBeNull();
  });

  it('gives each entry a stable, distinct id; the same upload twice gets two', () => {
    const entries = read().entries;
    expect(new Set(entries.map((e) => e.id)).size).toBe(entries.length);
    const again = read().entries;
    expect(again.map((e) => e.id)).toEqual(entries.map((e) => e.id));
    const twice = entries.filter((e) => e.filename === 'Twice.pdf');
    expect(twice).toHaveLength(2);
    expect(twice[0]!.id).toBe(entryId('jeremy.estrella@gmail.com', 'Twice.pdf', '2025-09-24T15:02:00', 0));
    expect(twice[1]!.id).toBe(entryId('jeremy.estrella@gmail.com', 'Twice.pdf', '2025-09-24T15:02:00', 1));
    expect(twice[0]!.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('ids do not depend on list position (the app keeps only the last 50)', () => {
    const doc = parseJsonText(STORE_TEXT) as Record<string, { documents: unknown[] }>;
    const full = readUploadsStore(doc).entries;
    doc['jeremy.estrella@gmail.com']!.documents.splice(0, 2);
    const trimmed = readUploadsStore(doc).entries;
    const byName = (list: typeof full, name: string) => list.find((e) => e.filename === name)!.id;
    expect(byName(trimmed, 'Blank.pdf')).toBe(byName(full, 'Blank.pdf'));
  });

  it('keeps colliding and empty fingerprints, mappings, trust_score and numbers as written', () => {
    const entries = read().entries;
    expect(entries.filter((e) => e.fingerprint === 'e3b0c44298fc1c14')).toHaveLength(2);
    expect(entries.find((e) => e.filename === 'Blank.pdf')!.fingerprint).toBe('');
    expect(entries.find((e) => e.filename === 'Faculty Handbook 2024.pdf')!.fingerprint).toBeNull();
    const analysed = entries.find((e) => e.uploadedAtUs === Date.UTC(2025, 8, 24, 14, 21, 9) * 1000 + 530771)!;
    expect(analysed.metadata.trust_score).toMatchObject({ trust_level: 'medium' });
    expect(analysed.metadata.mappings).toHaveLength(1);
    expect(analysed.standardsMapped).toEqual(['HLC.2.A', 'HLC.2.B']);
    expect(analysed.size).toBe(0);
  });

  it('keeps unique_standards per user', () => {
    expect(read().users[0]!.uniqueStandards).toEqual(['HLC.2.B', 'SACSCOC.8.2.a', 'HLC.3.C.1', 'HLC.2.A', 'HLC.3.C']);
  });

  it('never takes a hostile saved_path as a key', () => {
    const content = read();
    const hostile = content.entries.find((e) => e.filename === 'Escape.pdf')!;
    expect(hostile.fileKey).toBeNull();
    expect(hostile.metadata.saved_path).toBe('../../etc/passwd');
    expect(content.warnings.some((w) => w.id === hostile.id && /"\.\."/.test(w.reason))).toBe(true);
    for (const bad of ['/etc/passwd', 'a/../b', 'a//b', 'a\u0000b', 'a\\b', 'x'.repeat(1025)]) expect(unsafeKeyReason(bad)).not.toBeNull();
    expect(unsafeKeyReason('org/default/user/a@b.c/3fa91c0b-Policy.pdf')).toBeNull();
  });

  it('a store that is not an object is an error, never an empty store', () => {
    expect(() => readUploadsStore([])).toThrow(UploadsStoreShapeError);
    expect(() => readUploadsStore(null)).toThrow(/keyed by user/);
    expect(readUploadsStore({}).entries).toEqual([]);
  });
});
