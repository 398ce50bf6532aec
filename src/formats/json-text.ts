/**
 * JSON text as the seed apps write it, read and written without loss.
 *
 * The apps are Python: `json.dump` writes bare `NaN`, `Infinity` and
 * `-Infinity` (not JSON), whole-number floats as `2.0`, and integers of any
 * size. JavaScript's JSON.parse rejects the first and silently changes the
 * others (`2.0` → 2, `12345678901234567890` → 12345678901234567000). So:
 *
 * - A number whose text JavaScript would print differently is kept as its
 *   exact lexeme: a raw-JSON value (`JSON.rawJSON`, Node ≥ 21). JSON.stringify
 *   writes it back verbatim, so a file rewritten by pgferry keeps `2.0` as
 *   `2.0`; canonical.ts sends it to JSONB as its lexeme, so PostgreSQL keeps
 *   it too. Numbers that print back identically stay plain numbers (the
 *   common case, and the fast one).
 * - Bare NaN/±Infinity become JS numbers and are written back bare.
 * - `plainJson` turns raw numbers into plain numbers for callers of the
 *   library and the REST API, which hand out ordinary JavaScript values.
 *
 * What PostgreSQL's JSONB itself normalises (it stores numbers as `numeric`)
 * is printed by `numericText`: the exponent form (`1e400` → 1 followed by
 * 400 zeros, `1.5E+3` → `1500`) and the sign of zero (`-0.0` → `0.0`). The
 * value and the written scale survive; docs/storage.md lists this in one place.
 */

interface RawJson {
  readonly rawJSON: string;
}

/** JSON.rawJSON / JSON.isRawJSON are in Node ≥ 21 but not yet in TypeScript's lib. */
const NativeJson = JSON as unknown as {
  rawJSON(text: string): RawJson;
  isRawJSON(value: unknown): value is RawJson;
  parse(text: string, reviver: (this: unknown, key: string, value: unknown, context: { source?: string }) => unknown): unknown;
};

/** A number kept as its exact lexeme (e.g. `2.0`, `12345678901234567890`). */
export type RawNumber = RawJson;

export const isRawNumber = (value: unknown): value is RawNumber => NativeJson.isRawJSON(value);

/** A number from its JSON lexeme; throws on text that is not a JSON number. */
export function rawNumber(lexeme: string): RawNumber {
  if (!NUMBER_LEXEME.test(lexeme)) throw new SyntaxError(`not a JSON number: ${JSON.stringify(lexeme.slice(0, 40))}`);
  return NativeJson.rawJSON(lexeme);
}

/** The numeric value of a number or raw number; undefined for anything else. */
export function numberValue(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (isRawNumber(value)) return Number(value.rawJSON);
  return undefined;
}

const NUMBER_LEXEME = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/**
 * Could this text hold a number that JSON.parse would change? A cheap,
 * conservative scan of the numbers in value position (at the start, or after
 * `:`, `,` or `[`): text inside a string may match too (then the careful path
 * just costs a little more), but a number JSON.parse would change always
 * matches one of:
 * - an exponent (`1e400`, `1.5E+3`);
 * - a fraction ending in 0 (`2.0`, `1.50`);
 * - 16 or more digits and points (beyond a double's 15 significant digits);
 * - negative zero (`-0`);
 * - a value below 1e-6, which JavaScript prints with an exponent (`0.0000001`).
 * Any other decimal has at most 15 significant digits and no trailing zero,
 * and JavaScript's shortest round-trip form prints exactly those digits.
 * Anchoring on value position keeps timestamps and prose ("…04.703110",
 * "version 1.10") in strings from sending every file down the slower path.
 */
const LOSSY_NUMBER = /(?:^|[:,[])\s*(?:-?\d+(?:\.\d+)?[eE]|-?\d+\.\d*0(?!\d)|-?(?=[\d.]{16})\d|-0(?![.\deE])|-?0\.000000)/;

const SENTINEL = '\u0000pgferry:';
/** A bare NaN/±Infinity where a JSON value can stand: after `:`, `,` or `[`, before `,`, `]` or `}`. */
const BARE_NON_FINITE = /(?<=[:,[]\s*)(-?Infinity|NaN)(?=\s*[,\]}])/g;

function revive(this: unknown, _key: string, value: unknown, context: { source?: string }): unknown {
  if (typeof value === 'number') {
    const source = context.source;
    return source === undefined || source === String(value) ? value : NativeJson.rawJSON(source);
  }
  if (typeof value === 'string' && value.charCodeAt(0) === 0 && value.startsWith(SENTINEL)) return Number(value.slice(SENTINEL.length));
  return value;
}

/**
 * Parse JSON as Python writes it: an optional UTF-8 BOM, bare NaN/±Infinity,
 * and numbers kept exactly (see above). Throws SyntaxError on malformed text.
 */
export function parseJsonText(text: string): unknown {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const nonFinite = body.includes('NaN') || body.includes('Infinity');
  if (!nonFinite && !LOSSY_NUMBER.test(body)) return JSON.parse(body);
  if (!nonFinite) return NativeJson.parse(body, revive);
  // Fast path: bare tokens in value position become sentinel strings. Should
  // the pattern ever match inside a string, the inserted quote ends that
  // string and the sentinel's backslash then stands outside one, which is
  // always a syntax error: the careful tokenizer decides then.
  try {
    return NativeJson.parse(body.replace(BARE_NON_FINITE, '"\\u0000pgferry:$1"'), revive);
  } catch {
    return NativeJson.parse(replaceNonFiniteTokens(body), revive);
  }
}

/** Rewrite bare NaN/Infinity tokens outside strings as sentinel strings (the careful path). */
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

/**
 * JSON text as Python's json.dump writes it: non-finite numbers bare, raw
 * numbers verbatim. `indent` as JSON.stringify's (json.dump(indent=2) gives
 * the same layout).
 */
export function stringifyJsonText(value: unknown, indent?: number): string {
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

/**
 * `object[key] = value` for a key read from JSON. A plain assignment to the
 * key `__proto__` would set the object's prototype instead (the key vanishes
 * from the data); defining the property keeps it an ordinary own key, as
 * JSON.parse itself does.
 */
export function setJsonKey(object: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true });
  else object[key] = value;
}

/**
 * The value with every raw number turned into a plain JS number (what the
 * library and the REST API hand out). Returns the input itself when it holds
 * no raw number, so the common case allocates nothing.
 */
export function plainJson(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (isRawNumber(value)) return Number(value.rawJSON);
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      const next = plainJson(item);
      if (next !== item) {
        out ??= value.slice();
        out[i] = next;
      }
    }
    return out ?? value;
  }
  let out: Record<string, unknown> | undefined;
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    const item = record[key];
    const next = plainJson(item);
    if (next !== item) {
      out ??= { ...record };
      setJsonKey(out, key, next);
    }
  }
  return out ?? value;
}

// ---------------------------------------------------------------------------
// PostgreSQL's numeric: what JSONB keeps of a number.

/** numeric's limits: 131072 digits before the point, 16383 after it. */
const MAX_INTEGER_DIGITS = 131_072;
const MAX_SCALE = 16_383;

interface Decimal {
  negative: boolean;
  /** All significant digits, no point. */
  digits: string;
  /** Digits after the point in `digits` (negative: trailing zeros to add). */
  scale: number;
}

function decimalOf(lexeme: string): Decimal {
  const match = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(lexeme);
  if (!match) throw new SyntaxError(`not a JSON number: ${JSON.stringify(lexeme.slice(0, 40))}`);
  const [, sign, integer, fraction = '', exponent = '0'] = match;
  return { negative: sign === '-', digits: integer! + fraction, scale: fraction.length - Number(exponent) };
}

/** Is this number within what PostgreSQL's numeric (and so JSONB) can hold? */
export function isStorableNumber(lexeme: string): boolean {
  const { digits, scale } = decimalOf(lexeme);
  if (!/[1-9]/.test(digits)) return Math.max(0, scale) <= MAX_SCALE; // zero: only its scale matters
  const integerDigits = digits.replace(/^0+/, '').length - scale;
  return integerDigits <= MAX_INTEGER_DIGITS && Math.max(0, scale) <= MAX_SCALE;
}

/**
 * A number lexeme as PostgreSQL's numeric_out prints it after a trip through
 * JSONB: no exponent, the written scale kept (max(0, fraction digits −
 * exponent)), no sign on zero.
 */
export function numericText(lexeme: string): string {
  // Checked first: `1e999999999` must not become a billion-character string.
  if (!isStorableNumber(lexeme)) throw new RangeError(`number ${lexeme.slice(0, 40)} is outside PostgreSQL's numeric range`);
  const { negative, digits, scale } = decimalOf(lexeme);
  let integer: string;
  let fraction = '';
  if (scale <= 0) integer = digits + '0'.repeat(-scale);
  else {
    const padded = digits.length <= scale ? '0'.repeat(scale - digits.length + 1) + digits : digits;
    integer = padded.slice(0, padded.length - scale);
    fraction = padded.slice(padded.length - scale);
  }
  integer = integer.replace(/^0+(?=\d)/, '');
  const zero = !/[1-9]/.test(integer) && !/[1-9]/.test(fraction);
  return `${negative && !zero ? '-' : ''}${integer}${fraction === '' ? '' : `.${fraction}`}`;
}
