import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { REPO } from './fixtures/import-corpus.ts';

/**
 * The postgres.js null-socket guard (src/db/driver-guard.ts), in a process of
 * its own: the one known driver error is dropped, anything else still crashes.
 */
function runWithGuard(body: string) {
  const script = `
    import { guardPostgresJsNullSocketWrite } from '${REPO}/src/db/driver-guard.ts';
    guardPostgresJsNullSocketWrite();
    const driverError = () => {
      const error = new TypeError("Cannot read properties of null (reading 'write')");
      error.stack = error.message + '\\n    at nextWrite (file:///app/node_modules/postgres/src/connection.js:255:22)';
      return error;
    };
    ${body}`;
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
}

describe('the postgres.js null-socket guard', () => {
  it('drops the driver error thrown from a setImmediate; the process goes on', () => {
    const result = runWithGuard(`
      setImmediate(() => { throw driverError(); });
      setTimeout(() => console.log('still running'), 50);`);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain('still running');
  });

  it('lets any other uncaught error crash the process as before, with its stack', () => {
    const result = runWithGuard(`
      setImmediate(() => { throw new Error('a real bug'); });
      setTimeout(() => console.log('should not run'), 200);`);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('a real bug');
    expect(result.stdout).not.toContain('should not run');
  });

  it("leaves other errors to the app's own listener when it has one", () => {
    const result = runWithGuard(`
      process.on('uncaughtException', (error) => { console.log('app handled: ' + error.message); });
      setImmediate(() => { throw new Error('a real bug'); });
      setTimeout(() => console.log('still running'), 50);`);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain('app handled: a real bug');
  });
});
