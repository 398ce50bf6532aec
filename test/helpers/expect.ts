import { expect } from 'vitest';
import { isPgFerryError } from '../../src/errors.ts';

/** Await `promise` and assert it fails with a PgFerryError of `code`. */
export async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  try {
    await promise;
  } catch (error) {
    if (isPgFerryError(error)) {
      expect(error.code).toBe(code);
      return;
    }
    throw error;
  }
  throw new Error(`expected ${code}, but the call succeeded`);
}
