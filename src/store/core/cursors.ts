import { isValidRecordId } from '../../domain/ids.ts';
import { invalidInput } from '../../errors.ts';

/**
 * The Store's cursors, one format on every backend, so a cursor handed out by
 * one backend is valid on the other (the cutover modes compose two backends).
 * Opaque to callers: base64url JSON of the keyset position.
 *
 * - list: `[updatedKey, id]`, where updatedKey is updatedAt at microsecond
 *   precision, 'YYYY-MM-DDTHH:MM:SS.ffffffZ' — PostgreSQL's resolution; the
 *   API's millisecond strings would skip or repeat rows sharing a millisecond.
 * - messages: `[position]`, the position of the first message to return.
 *
 * Decoding is strict and complete here (calendar-valid timestamp, valid id,
 * int4 position), so a malformed cursor is the same INVALID_INPUT on every
 * backend and never reaches a query or a file scan.
 */

export interface ListKey {
  /** updatedAt at microsecond precision: 'YYYY-MM-DDTHH:MM:SS.ffffffZ'. */
  updatedKey: string;
  id: string;
}

const UPDATED_KEY_PATTERN = /^(\d{4})-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
/** Positions are PostgreSQL int4. */
export const MAX_POSITION = 2 ** 31 - 1;

function encode(position: unknown[]): string {
  return Buffer.from(JSON.stringify(position)).toString('base64url');
}

function decode(cursor: unknown, field: string, shape: (parts: unknown[]) => boolean): unknown[] {
  if (typeof cursor === 'string') {
    try {
      const parts = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
      if (Array.isArray(parts) && shape(parts)) return parts;
    } catch {
      // fall through: not base64url JSON
    }
  }
  throw invalidInput(`invalid ${field}: pass back the value exactly as returned`, { field });
}

/** A real instant in years 1-9999 (PostgreSQL has no year 0), not just the right shape. */
export function isUpdatedKey(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  const match = UPDATED_KEY_PATTERN.exec(value);
  if (!match || match[1] === '0000') return false;
  const millis = `${value.slice(0, 23)}Z`;
  const time = Date.parse(millis);
  return !Number.isNaN(time) && new Date(time).toISOString() === millis;
}

export const encodeListCursor = (key: ListKey): string => encode([key.updatedKey, key.id]);

export function decodeListCursor(cursor: unknown): ListKey {
  const [updatedKey, id] = decode(cursor, 'cursor', (p) => p.length === 2 && isUpdatedKey(p[0]) && isValidRecordId(p[1]));
  return { updatedKey: updatedKey as string, id: id as string };
}

export const encodeMessagesCursor = (position: number): string => encode([position]);

export function decodeMessagesCursor(cursor: unknown): number {
  const isPosition = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= MAX_POSITION;
  return decode(cursor, 'messagesCursor', (p) => p.length === 1 && isPosition(p[0]))[0] as number;
}

/** The keyset order of list(): newest updatedKey first, ties by id descending (negative when `a` comes first). */
export function compareListKeys(a: ListKey, b: ListKey): number {
  if (a.updatedKey !== b.updatedKey) return a.updatedKey > b.updatedKey ? -1 : 1;
  if (a.id !== b.id) return a.id > b.id ? -1 : 1;
  return 0;
}
