/**
 * Why a JSON text did not parse, said without quoting the text. V8's
 * SyntaxError messages quote the input ("Unexpected token 'x', "…secret…"
 * is not valid JSON"); a reason goes into reports, logs and terminals, so it
 * names only the place: line, column and character offset.
 */

const OBJECT = 1;
const ARRAY = 2;
const LITERAL = /true|false|null|NaN|-?Infinity|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

const isSpace = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

/**
 * The character offset of the first syntax error in `text` (JSON as Python
 * writes it: optional BOM, bare NaN/±Infinity), or -1 when it is well formed.
 * Iterative: a deeply nested text cannot exhaust the stack.
 */
export function jsonErrorOffset(text: string): number {
  const n = text.length;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const stack: number[] = [];
  const skipSpace = () => {
    while (i < n && isSpace(text.charCodeAt(i))) i++;
  };
  /** Scan a string starting at i; returns false (i at the fault) when it is malformed. */
  const scanString = (): boolean => {
    if (text.charCodeAt(i) !== 0x22) return false;
    for (i++; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return true;
      }
      if (c < 0x20) return false;
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) return false;
          i += 5;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i++;
        else return false;
      }
    }
    return false;
  };
  /** `"key":` after `{` or `,` inside an object. */
  const scanKey = (): boolean => {
    skipSpace();
    if (!scanString()) return false;
    skipSpace();
    if (text.charCodeAt(i) !== 0x3a) return false;
    i++;
    return true;
  };

  let expectValue = true;
  for (;;) {
    skipSpace();
    if (expectValue) {
      if (i >= n) return i;
      const c = text.charCodeAt(i);
      if (c === 0x7b) {
        i++;
        skipSpace();
        if (text.charCodeAt(i) === 0x7d) {
          i++;
          expectValue = false;
          continue;
        }
        stack.push(OBJECT);
        if (!scanKey()) return i;
        continue;
      }
      if (c === 0x5b) {
        i++;
        skipSpace();
        if (text.charCodeAt(i) === 0x5d) {
          i++;
          expectValue = false;
          continue;
        }
        stack.push(ARRAY);
        continue;
      }
      if (c === 0x22) {
        if (!scanString()) return i;
      } else {
        LITERAL.lastIndex = i;
        if (!LITERAL.test(text)) return i;
        i = LITERAL.lastIndex;
      }
      expectValue = false;
      continue;
    }
    const top = stack.at(-1);
    if (top === undefined) return i >= n ? -1 : i;
    const c = text.charCodeAt(i);
    if (c === 0x2c) {
      i++;
      if (top === OBJECT && !scanKey()) return i;
      expectValue = true;
    } else if ((c === 0x5d && top === ARRAY) || (c === 0x7d && top === OBJECT)) {
      stack.pop();
      i++;
    } else return i;
  }
}

/** "line L, column C" (1-based) of a character offset. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: offset - lineStart + 1 };
}

/**
 * The reason a text failed to parse, without any of its content. `error` is
 * what the parser threw: a SyntaxError is located by `jsonErrorOffset`; other
 * errors (RangeError: too deep, too long) describe no content and keep their message.
 */
export function jsonParseReason(error: unknown, text: string): string {
  if (!(error instanceof SyntaxError)) return `cannot parse JSON: ${error instanceof Error ? error.message : String(error)}`;
  const offset = jsonErrorOffset(text);
  if (offset === -1) return 'malformed JSON';
  if (offset >= text.length) return `malformed JSON: the text ends early (at character ${offset})`;
  const { line, column } = lineColumn(text, offset);
  return `malformed JSON at line ${line}, column ${column} (character ${offset})`;
}
