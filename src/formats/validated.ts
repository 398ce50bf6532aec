/**
 * What a format reader returns for one record: the typed row, or the reason
 * it cannot be read. Nothing is guessed silently: every repair (an id taken
 * from the file name, a missing counter taken as 0) is a warning.
 *
 * Terminology: a *record* is one source document (one conversation file, one
 * usage file); its *key* is the id it has in its kind (conversation id, user id).
 */
export type Validated<T> =
  | { ok: true; key: string; row: T; warnings: string[] }
  | { ok: false; key: string | null; reason: string; warnings: string[] };

export const isObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

/**
 * A value named in a reason: its type (and a string's length), never its
 * content — reasons go to reports, logs and terminals, and a file's text may
 * be secret or hold terminal control sequences.
 */
export const describe = (value: unknown): string =>
  value === null
    ? 'null'
    : Array.isArray(value)
      ? 'a list'
      : typeof value === 'string'
        ? `a string of ${value.length} characters`
        : typeof value;
