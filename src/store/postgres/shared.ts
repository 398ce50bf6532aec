import { type Database, errorCode, type RunOptions, type Sql } from '../../db/database.ts';
import { invalidInput, PgFerryError } from '../../errors.ts';
import type { Clock } from '../types.ts';

/**
 * Helpers shared by the PostgreSQL repositories (@internal).
 *
 * Time: every statement takes a `now` parameter that is null in production,
 * so the SQL falls back to the database clock (`coalesce($now, now())`).
 * Tests inject a Clock to move across day and month boundaries; the SQL is
 * the same either way.
 */

/**
 * What the repositories run SQL through: the Database (pool, retries), or a
 * transaction's runner (store/postgres/idempotency.ts) so that several
 * repository calls commit together.
 */
export type SqlRunner = Pick<Database, 'run'>;

/** The instant to pass as `$now`: the injected clock's, or null for database time. */
export const nowParam = (clock: Clock | undefined): Date | null => (clock ? clock() : null);

/**
 * SQLSTATEs that mean bad input rather than a server fault: NUL characters in
 * text/JSONB (22021, 22P05), values past PostgreSQL's size limits (54000),
 * and a date PostgreSQL cannot hold (22007, 22008) — the core decodes cursors
 * strictly (store/core/cursors.ts), so this is only the second line of defence.
 */
const INPUT_ERROR_CODES = new Set(['22021', '22P05', '54000', '22007', '22008']);

/**
 * Run one statement through Database.run (retries, slow-query log,
 * UNAVAILABLE mapping) and turn bad-value errors into INVALID_INPUT.
 */
export async function query<T>(db: SqlRunner, label: string, work: (sql: Sql) => Promise<T>, options?: RunOptions): Promise<T> {
  try {
    return await db.run(label, work, options);
  } catch (error) {
    if (error instanceof PgFerryError) throw error;
    const code = errorCode(error);
    if (code !== undefined && INPUT_ERROR_CODES.has(code)) {
      throw invalidInput(`value not accepted by PostgreSQL: ${(error as Error).message}`, { sqlstate: code });
    }
    throw error;
  }
}
