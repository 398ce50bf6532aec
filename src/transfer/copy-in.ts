import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { TransactionSql } from '../db/database.ts';

/**
 * `COPY … FROM STDIN` that always settles.
 *
 * postgres.js 3.4.9 never settles a COPY writable whose data the server
 * refuses after the last chunk was sent (porsager/postgres#1173, fix proposed
 * in #1183): CopyDone goes out, the server answers ErrorResponse (e.g.
 * "stack depth limit exceeded" for a jsonb value nested 20,000 deep), and the
 * writable's `final` callback — called only on CommandComplete — is dropped.
 * `pipeline` then waits forever, `sql.begin` never sends ROLLBACK, and the
 * session sits "idle in transaction (aborted)" while the import holds its
 * lock: the run hangs.
 *
 * The server's error does reach the query object (its `reject`, a no-op once
 * the query has resolved to the stream). Watching it turns the refusal into
 * a rejection here, so the transaction callback throws, postgres.js rolls
 * back and the batch is retried record by record.
 */
export async function copyIn(tx: TransactionSql, statement: string, chunks: Iterable<Buffer>): Promise<void> {
  const query = tx.unsafe(statement) as unknown as Promise<unknown> & {
    reject: (error: unknown) => void;
    writable(): Promise<Writable>;
  };
  const settle = query.reject;
  const refused = new Promise<never>((_, reject) => {
    query.reject = (error: unknown) => {
      reject(error);
      settle(error);
    };
  });
  refused.catch(() => {}); // observed through the race below, or never needed
  const writable = await Promise.race([query.writable(), refused]);
  // The stream is left to postgres.js when the server refused: destroying it
  // would send CopyFail and null the connection's stream of a later COPY.
  await Promise.race([pipeline(Readable.from(chunks, { objectMode: false }), writable), refused]);
}
