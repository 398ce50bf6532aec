import { invalidInput } from '../errors.ts';
import { MAX_JSON_DEPTH } from './limits.ts';

/**
 * Input hygiene for every value a caller hands the Store (the domain
 * validators call it; the HTTP layer also runs it over whole bodies), so both
 * backends see, store and refuse the same values:
 * - no NUL character: PostgreSQL text and jsonb cannot hold it;
 * - no unpaired UTF-16 surrogate (`"\ud800"` is valid JSON text but not
 *   Unicode): PostgreSQL would store U+FFFD in text, and refuse it in jsonb;
 * - JSON nested at most MAX_JSON_DEPTH levels: nothing legitimate nests so
 *   deep, and every layer below would spend stack on it.
 * The walk is iterative, so a hostile value cannot exhaust the stack here.
 */

/** Defined with the store's other limits (domain/limits.ts); re-exported for existing callers. */
export { MAX_JSON_DEPTH };

/** In a /u regex, a surrogate code point only matches when it is unpaired. */
const BAD_TEXT = /[\u0000\uD800-\uDFFF]/u;

function badText(text: string): boolean {
  return BAD_TEXT.test(text);
}

export function assertCleanInput(value: unknown, where: string): void {
  // Two parallel stacks rather than [value, depth] pairs: no allocation per node (bodies of ~2 MiB pass here).
  const values: unknown[] = [value];
  const depths: number[] = [0];
  while (values.length > 0) {
    const item = values.pop();
    const depth = depths.pop()!;
    if (typeof item === 'string') {
      if (badText(item))
        throw invalidInput(`the ${where} holds text with a NUL character or an unpaired surrogate (not valid Unicode)`, { field: where });
      continue;
    }
    if (item === null || typeof item !== 'object') continue;
    if (depth > MAX_JSON_DEPTH) throw invalidInput(`the ${where} nests deeper than ${MAX_JSON_DEPTH} levels`, { field: where });
    if (Array.isArray(item)) {
      for (let i = 0; i < item.length; i++) {
        values.push(item[i]);
        depths.push(depth + 1);
      }
    } else {
      const record = item as Record<string, unknown>;
      for (const key of Object.keys(record)) {
        if (badText(key))
          throw invalidInput(`the ${where} holds a key with a NUL character or an unpaired surrogate (not valid Unicode)`, {
            field: where,
          });
        values.push(record[key]);
        depths.push(depth + 1);
      }
    }
  }
}
