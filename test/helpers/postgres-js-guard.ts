/**
 * postgres.js 3.4.9 can throw from a setImmediate when the server closes a
 * connection while a small write is queued (`socket.write` on a null socket:
 * porsager/postgres#1154, #1208; fixes #1168/#1209 not merged yet). Nothing
 * can catch it, and it ends the process — which the cutover's fault tests
 * provoke on purpose by stopping PostgreSQL under load. The query concerned
 * is rejected with CONNECTION_CLOSED anyway, so for these tests only that one
 * error is ignored; every other uncaught error still ends the process.
 * docs/decisions.md tracks it for production (patch postgres.js or upgrade).
 */
export function ignorePostgresJsNullSocketWrite(): void {
  process.on('uncaughtException', (error) => {
    const known =
      error instanceof TypeError && /reading 'write'/.test(error.message) && /postgres\/src\/connection\.js/.test(error.stack ?? '');
    if (!known) throw error;
  });
}
