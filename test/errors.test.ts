import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, PgFerryError } from '../src/errors.ts';

describe('error codes', () => {
  it('are all documented in docs/errors.md with their HTTP status and description', () => {
    const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
    for (const [code, { status, description }] of Object.entries(ERROR_CODES)) {
      expect(doc).toContain(`| \`${code}\` | ${status} | ${description} |`);
    }
    const documented = [...doc.matchAll(/^\| `([A-Z_]+)` \| \d+ \|/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual(Object.keys(ERROR_CODES).sort());
  });

  it('carry their status', () => {
    expect(new PgFerryError('QUOTA_EXCEEDED', 'x').status).toBe(429);
  });
});
