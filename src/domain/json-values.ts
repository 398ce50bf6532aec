import { createHash } from 'node:crypto';

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
const SENTINEL = '\u0000pgferry:';

/** Parse JSON as Python writes it: tolerates a UTF-8 BOM and bare NaN/±Infinity. */
export function parsePythonJson(text: string): unknown {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (!body.includes('NaN') && !body.includes('Infinity')) return JSON.parse(body);
  return JSON.parse(replaceNonFiniteTokens(body), (_key, value) =>
    typeof value === 'string' && value.startsWith(SENTINEL) ? Number(value.slice(SENTINEL.length)) : value,
  );
}

/** Rewrite bare NaN/Infinity tokens outside strings as sentinel strings. */
function replaceNonFiniteTokens(text: string): string {
  let out = '';
  let last = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c)
        i++; // backslash: skip the escaped character
      else if (ch === 0x22) inString = false;
      continue;
    }
    if (ch === 0x22) {
      inString = true;
      continue;
    }
    let token: string | undefined;
    if (ch === 0x4e && text.startsWith('NaN', i)) token = 'NaN';
    else if (ch === 0x49 && text.startsWith('Infinity', i)) token = 'Infinity';
    else if (ch === 0x2d && text.startsWith('-Infinity', i)) token = '-Infinity';
    if (token) {
      // The escaped form: a raw NUL is not allowed inside a JSON string.
      out += `${text.slice(last, i)}"\\u0000pgferry:${token}"`;
      i += token.length - 1;
      last = i + 1;
    }
  }
  return out + text.slice(last);
}

/** JSON.stringify that writes non-finite numbers bare, as Python does. */
export function stringifyPythonJson(value: unknown, indent?: number): string {
  let hasNonFinite = false;
  const text = JSON.stringify(
    value,
    (_key, v) => {
      if (typeof v === 'number' && !Number.isFinite(v)) {
        hasNonFinite = true;
        return `${SENTINEL}${String(v)}`;
      }
      return v;
    },
    indent,
  );
  if (!hasNonFinite) return text;
  return text.replace(/"\\u0000pgferry:(NaN|-?Infinity)"/g, '$1');
}

/** Value → JSONB-safe value (non-finite numbers tagged). Returns the input when nothing needs changing. */
export function toJsonb(value: unknown): unknown {
  if (typeof value === 'number') return Number.isFinite(value) ? value : { [FLOAT_TAG]: String(value) };
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
      out[key] = next;
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
    for (const [key, item] of entries) out[key] = fromJsonb(item);
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
