import type { Logger } from '../log.ts';

/**
 * postgres.js 3.4.9 can throw from a setImmediate when the server closes a
 * connection while a small write is queued (`socket.write` on a null socket:
 * porsager/postgres#1154, #1208; the fixes #1168/#1209 are not released).
 * Nothing can catch it and it ends the process — a server restart would take
 * the app down with it, which `STORAGE_MODE=dual` promises never happens. The
 * query concerned is rejected with CONNECTION_CLOSED anyway (the store
 * journals or reports it), so exactly that error is logged and dropped.
 *
 * Every other uncaught exception keeps Node's behaviour: when no one else
 * listens, the guard steps aside and rethrows it, so the process still
 * crashes with the stack; when the app has its own listener, that one decides.
 * Remove this once postgres.js ships the fix.
 */
export function isPostgresJsNullSocketWrite(error: unknown): boolean {
  return (
    error instanceof TypeError &&
    /reading 'write'/.test(error.message) &&
    /[\\/]postgres[\\/]src[\\/]connection\.js/.test(error.stack ?? '')
  );
}

let installed = false;

export function guardPostgresJsNullSocketWrite(logger?: Logger): void {
  if (installed) return;
  installed = true;
  const onUncaught = (error: Error): void => {
    if (isPostgresJsNullSocketWrite(error)) {
      logger?.warn({ err: error.message }, 'postgres.js: write on a closed connection ignored (its query already failed)');
      return;
    }
    if (process.listenerCount('uncaughtException') > 1) return;
    process.off('uncaughtException', onUncaught);
    installed = false;
    // Nobody else handles it: crash exactly as without the guard.
    setImmediate(() => {
      throw error;
    });
  };
  process.on('uncaughtException', onUncaught);
}
