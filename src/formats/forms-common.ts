import { parseTimestampUs } from './timestamps.ts';

/**
 * What the forms app's two readers (forms-submission.ts, forms-job.ts) share:
 * its modules, the seed's status words, and times written in the server's
 * local zone. Pure code: no file system.
 */

/** The forms app's modules (seed 002). */
export const FORMS_MODULES = ['civil', 'hvac_mep', 'cleaning'] as const;
export type FormsModule = (typeof FORMS_MODULES)[number];
export const isFormsModule = (value: unknown): value is FormsModule =>
  typeof value === 'string' && (FORMS_MODULES as readonly string[]).includes(value);

/** Options both readers take. */
export interface FormsReadOptions {
  /**
   * IANA zone of the server that wrote naive local times (`datetime.now()`:
   * a submission's `timestamp`, a cleaning failure's ISO `completed_at`).
   * Naive `created_at` values came from `utcnow()` and are UTC whatever this says. Default UTC.
   */
  sourceTimezone?: string;
}

/** Is `zone` a time zone this runtime knows? */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const NAIVE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?)?$/;

/** The offset (ms) of `zone` at the UTC instant `utcMs`. */
function zoneOffsetMs(zone: string, utcMs: number): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: zone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(new Date(utcMs));
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0);
  const wall = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
  return wall - Math.floor(utcMs / 1000) * 1000;
}

/**
 * A time written in `zone`'s local wall clock → epoch microseconds. A value
 * with an offset or `Z`, or an epoch number, is already absolute. For a wall
 * time that a DST change makes ambiguous, the earlier instant is taken.
 */
export function parseLocalTimestampUs(value: unknown, zone = 'UTC'): number | null {
  const us = parseTimestampUs(value);
  if (us === null || typeof value !== 'string' || zone === 'UTC' || !NAIVE.test(value.trim())) return us;
  // Two passes: the offset at the guessed instant, then at the corrected one.
  const wallMs = us / 1000;
  const first = zoneOffsetMs(zone, wallMs);
  const second = zoneOffsetMs(zone, wallMs - first);
  return us - second * 1000;
}

/** A JSON pointer-ish path for messages: `items[0].photos[1]`. */
export const at = (base: string, key: string | number): string =>
  typeof key === 'number' ? `${base}[${key}]` : base === '' ? key : `${base}.${key}`;
