/**
 * How deep does JSON text nest, found without parsing it.
 *
 * JSON.parse (V8), the canonical hash (transfer/canonical.ts) and PostgreSQL's
 * jsonb input all recurse once per level of nesting: text nested some tens of
 * thousands deep exhausts their stacks ("Maximum call stack size exceeded",
 * "stack depth limit exceeded"). One linear pass over the characters, aware
 * of strings and their escapes, finds such text before any of them sees it.
 * It keeps a counter, never a stack, so no text can exhaust it; it does not
 * check the syntax (the parser after it does).
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/**
 * Does `text` nest arrays and objects more than `maxDepth` levels deep?
 * (`[]` and `{}` are depth 1; a scalar is depth 0.) Stops at the first
 * level past the limit, so hostile text costs no more than reaching it.
 */
export function textDepthExceeds(text: string, maxDepth: number): boolean {
  let depth = 0;
  const length = text.length;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = endOfString(text, i + 1);
    } else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > maxDepth) return true;
    } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) {
      depth--;
    }
  }
  return false;
}

/**
 * The index of the quote closing a string whose content starts at `from`
 * (or the text's end when it is never closed). Jumps from quote to quote
 * with indexOf; a quote is escaped when an odd number of backslashes precede it.
 */
function endOfString(text: string, from: number): number {
  let at = from;
  for (;;) {
    const quote = text.indexOf('"', at);
    if (quote < 0) return text.length;
    let backslashes = 0;
    while (quote - backslashes - 1 >= from && text.charCodeAt(quote - backslashes - 1) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return quote;
    at = quote + 1;
  }
}
