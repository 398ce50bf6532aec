/**
 * The one definition of case-insensitive search, shared by both backends
 * (docs/decisions.md): each character is compared by its Unicode simple
 * lowercase mapping, one character to one character, with the final sigma ς
 * treated as σ. So `İ` matches `i`, `Σ` matches `σ` and `ς`, `ẞ` matches `ß`;
 * but `ß` does not match `ss` and the dotless `ı` matches only itself (no
 * locale rules, no expansions).
 *
 * The JSON backend folds both texts with `foldCase`. PostgreSQL's ILIKE and
 * lower() follow the database's locale (under `C` only ASCII is folded), so
 * the PostgreSQL backend does not use them: `translate()` maps exactly the
 * characters that fold onto a character of the needle, computed here from
 * the same `foldCase` (see `foldTranslation`).
 */

/** Characters whose whole-string toLowerCase is not their simple per-character mapping. */
const SPECIAL = /[\u0130\u03a3\u03c2]/g;
const SPECIAL_FOLD: Record<string, string> = { '\u0130': 'i', '\u03a3': 'σ', '\u03c2': 'σ' };

export function foldCase(text: string): string {
  return text.replace(SPECIAL, (ch) => SPECIAL_FOLD[ch]!).toLowerCase();
}

/** folded character → the other characters that fold onto it. Built once, on first use. */
let sources: Map<string, string[]> | undefined;

function foldSources(): Map<string, string[]> {
  if (sources) return sources;
  sources = new Map();
  // Every cased character is below U+20000 (Adlam, Medefaidrin and kin end before U+1E950).
  for (let cp = 0; cp < 0x20000; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    const ch = String.fromCodePoint(cp);
    const folded = foldCase(ch);
    if (folded === ch || [...folded].length !== 1) continue;
    const list = sources.get(folded);
    if (list) list.push(ch);
    else sources.set(folded, [ch]);
  }
  return sources;
}

/**
 * `from`/`to` for SQL `translate(text, from, to)` so that the translated
 * text contains `foldCase(needle)` exactly when `foldCase(text)` does:
 * every character that folds onto a character of the folded needle is
 * replaced by that character. Other characters are left alone — they cannot
 * match any needle character either way.
 */
export function foldTranslation(foldedNeedle: string): { from: string; to: string } {
  const map = foldSources();
  let from = '';
  let to = '';
  for (const target of new Set(foldedNeedle)) {
    for (const source of map.get(target) ?? []) {
      from += source;
      to += target;
    }
  }
  return { from, to };
}
