import { createHash } from 'node:crypto';
import { isRawNumber, numericText, setJsonKey } from '../formats/json-text.ts';

/**
 * The seed apps are Python: their JSON files contain bare `NaN`, `Infinity`
 * and `-Infinity` (json.dump's default), which JSON.parse rejects and JSONB
 * cannot hold. pgferry keeps them losslessly:
 *
 * - in memory and in the public API they are JS numbers (NaN, ±Infinity);
 * - in JSON files they are written back bare, as Python wrote them;
 * - in PostgreSQL JSONB they are the tagged object {"$pgferry:float": "NaN"}
 *   (see toJsonb/fromJsonb), decoded on read.
 */

export const FLOAT_TAG = '$pgferry:float';
/**
 * A caller's own one-key object whose key is one of our tags is wrapped in
 * {"$pgferry:object": …} on the way in, so it can never be mistaken for a
 * tagged number on the way out.
 */
export const ESCAPE_TAG = '$pgferry:object';
export const isTagKey = (key: string): boolean => key === FLOAT_TAG || key === ESCAPE_TAG;
/** Value → JSONB-safe value (non-finite numbers tagged). Returns the input when nothing needs changing. */
export function toJsonb(value: unknown): unknown {
  if (typeof value === 'number') return Number.isFinite(value) ? value : { [FLOAT_TAG]: String(value) };
  if (isRawNumber(value)) return value; // JSON.stringify writes its lexeme: JSONB keeps 2.0 as 2.0

  if (Array.isArray(value)) {
    let changed = false;
    const mapped = value.map((item) => {
      const next = toJsonb(item);
      if (next !== item) changed = true;
      return next;
    });
    return changed ? mapped : value;
  }
  if (value !== null && typeof value === 'object') {
    let changed = false;
    const entries = Object.entries(value);
    const out: Record<string, unknown> = {};
    for (const [key, item] of entries) {
      const next = toJsonb(item);
      if (next !== item) changed = true;
      setJsonKey(out, key, next);
    }
    if (entries.length === 1 && isTagKey(entries[0]![0])) return { [ESCAPE_TAG]: out };
    return changed ? out : value;
  }
  return value;
}

/** Inverse of toJsonb. */
export function fromJsonb(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fromJsonb);
  if (value !== null && typeof value === 'object') {
    let entries = Object.entries(value);
    if (entries.length === 1 && entries[0]![0] === FLOAT_TAG) return Number(entries[0]![1]);
    const escaped = entries.length === 1 && entries[0]![0] === ESCAPE_TAG ? entries[0]![1] : undefined;
    if (escaped !== null && typeof escaped === 'object' && !Array.isArray(escaped)) entries = Object.entries(escaped);
    const out: Record<string, unknown> = {};
    for (const [key, item] of entries) setJsonKey(out, key, fromJsonb(item));
    return out;
  }
  return value;
}

/**
 * Deterministic serialisation for content hashes: object keys sorted,
 * non-finite numbers tagged, `undefined` dropped. Two equal values always
 * give the same string, whichever backend they came from.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'number') return Number.isFinite(value) ? JSON.stringify(value) : `{"${FLOAT_TAG}":"${value}"}`;
  if (typeof value === 'string' || typeof value === 'boolean') return JSON.stringify(value);
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (isRawNumber(value)) return numericText(value.rawJSON);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    const keys = Object.keys(value)
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(String(value));
}

export function contentHash(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}
