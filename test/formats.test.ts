import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TIER_LIMITS } from '../src/config.ts';
import { readUsage, writeUsage } from '../src/formats/chat-usage.ts';
import { APP_STYLE, formatTimestamp, parseTimestampUs, styleOf } from '../src/formats/timestamps.ts';
import { readJsonFile } from '../src/store/json/files.ts';

/**
 * src/formats: one reader and writer per on-disk format, shared by the JSON
 * backend and the importer (issue 8 items 1 and 3).
 */

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'pgferry-formats-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('timestamps', () => {
  const us = Date.UTC(2026, 11, 1, 16, 32, 4, 703) * 1000 + 112;

  it('new values use the chat app form: naive UTC with microseconds, which Python 3.10 fromisoformat reads', () => {
    expect(formatTimestamp(us)).toBe('2026-12-01T16:32:04.703112');
    expect(formatTimestamp(us, APP_STYLE)).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/);
  });

  it('a value is written in the style of the one already there', () => {
    const cases: Array<[unknown, unknown]> = [
      ['2024-01-01T10:00:00.123456', '2026-12-01T16:32:04.703112'],
      ['2024-01-01T10:00:00', '2026-12-01T16:32:04.703112'], // Python omits a zero fraction: keep microseconds
      ['2024-01-01 10:00:00.123', '2026-12-01 16:32:04.703'],
      ['2024-01-01T10:00:00.123456Z', '2026-12-01T16:32:04.703112Z'],
      ['2024-01-01T10:00:00.123456+04:00', '2026-12-01T16:32:04.703112+00:00'],
      [1734775364.9219673, us / 1e6],
      ['2024-01-01', '2026-12-01'],
    ];
    for (const [existing, expected] of cases) {
      const style = styleOf(existing);
      expect(style, String(existing)).toBeDefined();
      const written = formatTimestamp(us, style!);
      expect(written, String(existing)).toEqual(expected);
      // and it reads back as the same instant (to the style's precision)
      const back = parseTimestampUs(written)!;
      expect(Math.abs(back - us), String(existing)).toBeLessThan(86_400_000_000);
    }
  });
});

describe('usage files', () => {
  it("reads the app's spelling and seed 001's column names alike, and writes each back in its own spelling", () => {
    const app = {
      user_id: 'u1',
      tier: 'pro',
      daily_count: 3,
      monthly_count: 9,
      total_queries: 40,
      last_daily_reset: '2026-12-01',
      last_monthly_reset: '2026-12-01',
    };
    const seed = {
      user_id: 'u1',
      tier: 'pro',
      daily_used: 3,
      daily_limit: 10,
      monthly_used: 9,
      monthly_limit: 100,
      total_queries: 40,
      last_reset_daily: '2026-12-01T00:00:00',
      last_reset_monthly: '2026-12-01T00:00:00',
    };
    const a = readUsage(app, 'u1');
    const b = readUsage(seed, 'u1');
    expect(a.ok && b.ok).toBe(true);
    if (!a.ok || !b.ok) return;
    expect(b.row).toEqual(a.row);
    expect(a.row).toMatchObject({
      dailyUsed: 3,
      monthlyUsed: 9,
      totalQueries: 40,
      lastResetDaily: '2026-12-01',
      lastResetMonthly: '2026-12-01',
    });

    const next = { ...b.row, dailyUsed: 4 };
    expect(writeUsage(seed, next, DEFAULT_TIER_LIMITS)).toEqual({
      ...seed,
      daily_used: 4,
      daily_limit: DEFAULT_TIER_LIMITS.pro.daily,
      monthly_limit: DEFAULT_TIER_LIMITS.pro.monthly,
    });
    expect(writeUsage(app, next, DEFAULT_TIER_LIMITS)).toEqual({ ...app, daily_count: 4 });
    expect(Object.keys(writeUsage(undefined, next, DEFAULT_TIER_LIMITS)).sort()).toEqual(Object.keys(app).sort());
  });

  it('a whole-number float counter (3.0) counts as 3; a fraction is refused with the field named', async () => {
    const { parseJsonText } = await import('../src/formats/json-text.ts');
    const whole = readUsage(parseJsonText('{"daily_count": 3.0, "tier": "free"}'), 'u1');
    expect(whole.ok && whole.row.dailyUsed).toBe(3);
    const fraction = readUsage(parseJsonText('{"daily_count": 3.5, "tier": "free"}'), 'u1');
    expect(fraction.ok).toBe(false);
    expect(!fraction.ok && fraction.reason).toMatch(/daily_count must be an integer/);
  });
});

describe('a file another program is writing', () => {
  it('is read again a moment later instead of being CORRUPT_DATA', async () => {
    const file = path.join(tmp, 'mid-write.json');
    await writeFile(file, ''); // open('w') has truncated it; json.dump has not written yet
    const later = sleep(60).then(() => writeFile(file, '{"id": "c1", "n": 2.0}'));
    const value = await readJsonFile(file);
    await later;
    expect(value).toMatchObject({ id: 'c1' });
  });

  it('is CORRUPT_DATA naming the file when it stays unparsable', async () => {
    const file = path.join(tmp, 'broken.json');
    await writeFile(file, '{"id": ');
    const started = Date.now();
    await expect(readJsonFile(file)).rejects.toMatchObject({ code: 'CORRUPT_DATA', details: { path: file } });
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
