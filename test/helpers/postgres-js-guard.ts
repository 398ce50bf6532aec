import { guardPostgresJsNullSocketWrite } from '../../src/db/driver-guard.ts';

/** The production guard (src/db/driver-guard.ts), installed before any store opens in a test's app process. */
export function ignorePostgresJsNullSocketWrite(): void {
  guardPostgresJsNullSocketWrite();
}
