/**
 * Timestamps as the seed apps write them, read into epoch microseconds and
 * written back in the form the file already uses.
 *
 * Forms seen on disk (REAL-FORMATS.md, DESIGN 8.1/8.2):
 * - naive UTC with microseconds, `datetime.utcnow().isoformat()`:
 *   `2026-12-01T16:32:04.703112` (no fraction when the microsecond is 0);
 * - the same with an offset or `Z`, a space separator, or 3-digit fractions;
 * - epoch seconds as a float, `time.time()`: `1734775364.9219673`;
 * - a bare date `2024-01-01`.
 *
 * The chat app's own readers parse with Python 3.10's `datetime.fromisoformat`,
 * which rejects `Z` and fractions that are not 3 or 6 digits: a file must never
 * receive a form its app cannot read back, so a new value copies the style of
 * one already in the file, and new files get the chat app's form.
 */

const MIN_US = Date.UTC(1, 0, 1) * 1000;
const MAX_US = Date.UTC(9999, 11, 31, 23, 59, 59, 999) * 1000 + 999;

const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})(?:([T ])(\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/**
 * A timestamp → epoch microseconds, or null when it is not one. A timestamp
 * without a zone is UTC (the apps used utcnow()); digits past the sixth are
 * dropped; numbers are epoch seconds.
 */
export function parseTimestampUs(value: unknown): number | null {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return null;
    const us = Math.round(value * 1e6);
    return us >= MIN_US && us <= MAX_US ? us : null;
  }
  if (typeof value !== 'string') return null;
  const m = TIMESTAMP.exec(value.trim());
  if (!m) return null;
  const [, y, mo, d, , h = '0', mi = '0', s = '0', frac = '', zone] = m;
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return null;
  const date = new Date(0);
  date.setUTCFullYear(Number(y), month - 1, day);
  if (date.getUTCMonth() !== month - 1) return null; // 31 April and the like
  date.setUTCHours(hour, minute, second, 0);
  let us = date.getTime() * 1000 + Number((frac + '000000').slice(0, 6));
  if (zone && zone.toUpperCase() !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const offsetMin = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4) || '0');
    us -= sign * offsetMin * 60_000_000;
  }
  return us >= MIN_US && us <= MAX_US ? us : null;
}

/** How a file writes its timestamps. */
export type TimestampStyle =
  | { kind: 'epoch' }
  | { kind: 'date' }
  | { kind: 'iso'; separator: 'T' | ' '; fraction: 0 | 3 | 6; zone: '' | 'Z' | '+00:00' };

/** The chat app's form: naive UTC, `T`, microseconds. */
export const APP_STYLE: TimestampStyle = { kind: 'iso', separator: 'T', fraction: 6, zone: '' };

/** The style of an existing timestamp value; undefined when it is not one. */
export function styleOf(value: unknown): TimestampStyle | undefined {
  if (typeof value === 'number') return parseTimestampUs(value) === null ? undefined : { kind: 'epoch' };
  if (typeof value !== 'string' || parseTimestampUs(value) === null) return undefined;
  const m = TIMESTAMP.exec(value.trim())!;
  const [, , , , separator, , , , frac, zone] = m;
  if (separator === undefined) return { kind: 'date' };
  // Python writes no fraction when the microsecond is 0: that says nothing, so keep microseconds.
  const fraction = frac === undefined || frac.length !== 3 ? 6 : 3;
  return {
    kind: 'iso',
    separator: separator === ' ' ? ' ' : 'T',
    fraction,
    zone: zone === undefined ? '' : zone.toUpperCase() === 'Z' ? 'Z' : '+00:00',
  };
}

/** The first timestamp style found among `values`, else the chat app's. */
export function styleAmong(...values: unknown[]): TimestampStyle {
  for (const value of values) {
    const style = styleOf(value);
    if (style) return style;
  }
  return APP_STYLE;
}

/** Epoch microseconds in a style (UTC), as Python's isoformat() would write it. Epoch style gives a number of seconds. */
export function formatTimestamp(us: number, style: TimestampStyle = APP_STYLE): string | number {
  if (style.kind === 'epoch') return us / 1e6;
  const ms = Math.floor(us / 1000);
  const iso = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  if (style.kind === 'date') return iso.slice(0, 10);
  const micro = String(us - ms * 1000).padStart(3, '0');
  // Python's isoformat() writes no fraction at all when the microsecond is 0.
  const whole = us % 1_000_000 === 0;
  const fraction =
    style.fraction === 0 || (whole && style.fraction === 6)
      ? ''
      : style.fraction === 3
        ? iso.slice(19, 23)
        : `${iso.slice(19, 23)}${micro}`;
  return `${iso.slice(0, 10)}${style.separator}${iso.slice(11, 19)}${fraction}${style.zone}`;
}

/** Epoch microseconds → ISO 8601 UTC with `Z` and milliseconds: what the library and the REST API hand out. */
export const isoFromUs = (us: number): string => new Date(Math.floor(us / 1000)).toISOString();
