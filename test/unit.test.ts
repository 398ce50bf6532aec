import { describe, expect, it } from 'vitest';
import { DEFAULT_TIER_LIMITS, loadConfig, parseTierLimits } from '../src/config.ts';
import { validateRecordId, validateUserId } from '../src/domain/ids.ts';
import { canonicalJson, contentHash, fromJsonb, toJsonb } from '../src/domain/json-values.ts';
import { consumeCounters, freshCounters, periodsAt, rollPeriods } from '../src/domain/usage.ts';
import { parseJsonText, stringifyJsonText } from '../src/formats/json-text.ts';
import { redactSecrets, redactUrl } from '../src/log.ts';
import { splitStatements } from '../src/schema/migrations.ts';

describe('config', () => {
  it('defaults to the JSON backend and the seed pool sizes', () => {
    const config = loadConfig({});
    expect(config.databaseUrl).toBeUndefined();
    expect(config.storageMode).toBe('json');
    expect(config.pool).toEqual({ max: 15, idleSeconds: 30, connectTimeoutSeconds: 10 });
    expect(config.slowQueryMs).toBe(1000);
    expect(config.tierLimits).toEqual(DEFAULT_TIER_LIMITS);
  });

  it('picks postgres with DATABASE_URL and fail-fast in production', () => {
    const config = loadConfig({ DATABASE_URL: 'postgres://u:p@h/db', NODE_ENV: 'production' });
    expect(config.storageMode).toBe('postgres');
    expect(config.onDbUnavailable).toBe('fail');
    expect(loadConfig({ DATABASE_URL: 'embedded' }).onDbUnavailable).toBe('fallback');
  });

  it('names the variable and what is accepted', () => {
    expect(() => loadConfig({ DB_POOL_MAX: 'many' })).toThrow(/DB_POOL_MAX: expected an integer from 1 to 1000/);
    expect(() => loadConfig({ STORAGE_MODE: 'x' })).toThrow(/STORAGE_MODE: expected one of json, dual/);
    expect(() => loadConfig({ STORAGE_MODE: 'postgres' })).toThrow(/STORAGE_MODE.*needs PostgreSQL/);
    expect(() => loadConfig({ AUTH_MODE: 'dev', NODE_ENV: 'production' })).toThrow(/AUTH_MODE/);
    expect(() => loadConfig({ TIER_LIMITS: '{bad' })).toThrow(/TIER_LIMITS/);
    expect(() => loadConfig({ DATABASE_URL: 'mysql://u:secretpw@h/db' })).toThrow(/DATABASE_URL/);
    expect(() => loadConfig({ DATABASE_URL: 'mysql://u:secretpw@h/db' })).not.toThrow(/secretpw/);
  });

  it('merges TIER_LIMITS over the defaults; null is unlimited', () => {
    const limits = parseTierLimits('{"free":{"daily":3},"pro":{"monthly":null}}');
    expect(limits.free).toEqual({ daily: 3, monthly: 100 });
    expect(limits.pro).toEqual({ daily: 100, monthly: null });
    expect(limits.enterprise).toEqual({ daily: null, monthly: null });
    expect(() => parseTierLimits('{"gold":{"daily":1}}')).toThrow(/TIER_LIMITS/);
    expect(() => parseTierLimits('{"free":{"daily":-1}}')).toThrow(/TIER_LIMITS/);
  });
});

describe('redaction', () => {
  it('hides passwords in URLs and free text, tokens and AWS keys', () => {
    expect(redactUrl('postgres://user:s3cret@db.example.com:5432/app')).toBe('postgres://user:***@db.example.com:5432/app');
    const text = redactSecrets(
      'failed postgres://app:pa55word@host/db password=hunter2 Authorization: Bearer eyJhbGciOi.abc.def AKIAABCDEFGHIJKLMNOP aws_secret_access_key=wJalrXUtnFEMI/K7MDENG',
    );
    for (const secret of ['pa55word', 'hunter2', 'eyJhbGciOi', 'AKIAABCDEFGHIJKLMNOP', 'wJalrXUtnFEMI']) expect(text).not.toContain(secret);
  });
});

describe('ids', () => {
  it('accepts real ids and rejects path tricks', () => {
    for (const ok of ['a1b2c3', '0f8fad5b-d9cb-469f-a165-70867728950e', 'auth0|abc123', 'alice@example.com', 'Xy9_-']) {
      expect(validateUserId(ok)).toBe(ok);
    }
    for (const bad of ['', '..', '../x', 'a/b', 'a\\b', '.hidden', 'x'.repeat(129), 'a\u0000b', 'a b', 42]) {
      expect(() => validateUserId(bad)).toThrow(/invalid userId/);
    }
    expect(() => validateRecordId('a.json')).toThrow(/invalid id/);
    expect(validateRecordId('sub_0123456789ab')).toBe('sub_0123456789ab');
  });
});

describe('Python JSON values', () => {
  it('parses bare NaN/Infinity outside strings only, and a BOM', () => {
    const value = parseJsonText('\ufeff{"a": NaN, "b": [Infinity, -Infinity], "s": "NaN Infinity \\" NaN", "n": 1}') as Record<
      string,
      unknown
    >;
    expect(Number.isNaN(value.a)).toBe(true);
    expect(value.b).toEqual([Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]);
    expect(value.s).toBe('NaN Infinity " NaN');
    expect(stringifyJsonText(value)).toBe('{"a":NaN,"b":[Infinity,-Infinity],"s":"NaN Infinity \\" NaN","n":1}');
  });

  it('round-trips non-finite numbers through the JSONB encoding', () => {
    const value = { x: [1, Number.NaN, { y: Number.NEGATIVE_INFINITY }], z: 'Infinity' };
    const encoded = toJsonb(value);
    expect(JSON.parse(JSON.stringify(encoded))).toEqual(encoded);
    const decoded = fromJsonb(JSON.parse(JSON.stringify(encoded))) as typeof value;
    expect(Number.isNaN(decoded.x[1])).toBe(true);
    expect((decoded.x[2] as { y: number }).y).toBe(Number.NEGATIVE_INFINITY);
    expect(decoded.z).toBe('Infinity');
    const lookalike = { a: { '$pgferry:float': 'NaN' }, b: { '$pgferry:object': { c: 1 } } };
    expect(fromJsonb(JSON.parse(JSON.stringify(toJsonb(lookalike))))).toEqual(lookalike);
    const plain = { a: [1, 2] };
    expect(toJsonb(plain)).toBe(plain);
  });

  it('hashes canonically regardless of key order', () => {
    expect(canonicalJson({ b: 1, a: [Number.NaN] })).toBe('{"a":[{"$pgferry:float":"NaN"}],"b":1}');
    expect(contentHash({ a: 1, b: 2 })).toBe(contentHash({ b: 2, a: 1 }));
  });
});

describe('usage periods', () => {
  it('resets on a new UTC day and month', () => {
    const limits = DEFAULT_TIER_LIMITS;
    const march31 = periodsAt(new Date('2030-03-31T23:59:59Z'));
    expect(march31).toMatchObject({ day: '2030-03-31', month: '2030-03-01', dailyResetsAt: '2030-04-01T00:00:00.000Z' });
    let counters = freshCounters(march31);
    for (let i = 0; i < 10; i++) counters = consumeCounters(counters, 1, limits, march31).counters;
    expect(consumeCounters(counters, 1, limits, march31).allowed).toBe(false);
    const april1 = periodsAt(new Date('2030-04-01T00:00:00Z'));
    expect(rollPeriods(counters, april1)).toMatchObject({ dailyUsed: 0, monthlyUsed: 0, totalQueries: 10 });
    const dec = periodsAt(new Date('2030-12-31T10:00:00Z'));
    expect(dec.monthlyResetsAt).toBe('2031-01-01T00:00:00.000Z');
  });
});

describe('SQL statement splitting', () => {
  it('respects quotes, dollar quotes and comments', () => {
    const sql = `create table a (x text default ';'); -- c;omment
create function f() returns int language sql as $$ select 1; $$;
/* block; */ create index concurrently i on a (x)`;
    const parts = splitStatements(sql);
    expect(parts).toHaveLength(3);
    expect(parts[1]).toContain('$$ select 1; $$');
  });
});
