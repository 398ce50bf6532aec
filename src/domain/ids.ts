import { randomUUID } from 'node:crypto';
import { invalidInput } from '../errors.ts';

/**
 * IDs are checked against strict patterns before they touch a path or a
 * query (brief rule 3): no separators, no "..", bounded length. User ids
 * allow the characters real auth subjects use (Firebase uids, "auth0|…",
 * emails in the seed-000 upload store).
 */
export const USER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.@|+=:-]{0,127}$/;
export const RECORD_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

function check(kind: string, value: unknown, pattern: RegExp): string {
  if (typeof value !== 'string' || !pattern.test(value) || value.includes('..')) {
    const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 64)) : typeof value;
    throw invalidInput(`invalid ${kind}: ${shown} (expected 1-128 characters matching ${pattern.source})`, { field: kind });
  }
  return value;
}

export const validateUserId = (value: unknown): string => check('userId', value, USER_ID_PATTERN);
export const validateRecordId = (value: unknown, kind = 'id'): string => check(kind, value, RECORD_ID_PATTERN);

export const isValidUserId = (value: unknown): value is string =>
  typeof value === 'string' && USER_ID_PATTERN.test(value) && !value.includes('..');
export const isValidRecordId = (value: unknown): value is string =>
  typeof value === 'string' && RECORD_ID_PATTERN.test(value) && !value.includes('..');

export const newId = (): string => randomUUID();
