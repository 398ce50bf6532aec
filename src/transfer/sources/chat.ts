import type { SourceFile } from '../source.ts';

/**
 * Paths of the chat app's JSON tree (DESIGN section 8.1, seeds 001 and 003),
 * shared by its two kinds (kinds/conversations, kinds/usage) and validate.ts:
 *
 *   conversations/<userId>/<conversationId>.json   per-user layout
 *   conversations/<conversationId>.json            original single-user layout (--default-user)
 *   usage/<userId>/usage.json
 */

export type { SourceFile } from '../source.ts';

/** The user folder a file sits in (`conversations/<user>/…`, `usage/<user>/usage.json`); null for the single-user layout. */
export function fileUser(file: SourceFile): string | null {
  const parts = file.rel.split('/');
  return parts.length === 3 ? parts[1]! : null;
}

/** The key a file stands for by its name: a conversation file's name without `.json`, a usage file's user folder. */
export function fileStem(file: SourceFile): string {
  const parts = file.rel.split('/');
  if (parts[0] === 'usage') return parts[1]!;
  const name = parts.at(-1)!;
  return name.endsWith('.json') ? name.slice(0, -'.json'.length) : name;
}
