import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../src/db/embedded.ts';

/**
 * A throwaway PostgreSQL 15 server from Debian's binaries, so the migration
 * suite also runs on the oldest major version pgferry supports. It listens
 * on 127.0.0.1 only, with a random password (so clients exercise password
 * auth), and lives in a temp directory that stop() removes.
 */

export const PG15_BIN = '/usr/lib/postgresql/15/bin';
export const pg15Available = ['initdb', 'pg_ctl', 'postgres'].every((tool) => existsSync(path.join(PG15_BIN, tool)));

const run = promisify(execFile);

export interface Pg15Server {
  /** Superuser URL of the `postgres` database. */
  adminUrl: string;
  stop(): Promise<void>;
}

/** PostgreSQL refuses to run as root: as root, run its binaries as the `postgres` system user. */
function runAs(): { uid: number; gid: number } | undefined {
  if (os.userInfo().uid !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

export async function startPg15(): Promise<Pg15Server> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-pg15-'));
  await chmod(dir, 0o755);
  const user = runAs();
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  const pwfile = path.join(dir, 'pwfile');
  await writeFile(pwfile, password, { mode: 0o600 });
  if (user) {
    await chown(dir, user.uid, user.gid);
    await chown(pwfile, user.uid, user.gid);
  }
  const data = path.join(dir, 'data');
  const options = { cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, LC_ALL: 'C' }, ...user };
  const port = await freePort();
  try {
    await run(
      path.join(PG15_BIN, 'initdb'),
      ['-D', data, '-U', 'postgres', `--pwfile=${pwfile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C', '--no-sync'],
      options,
    );
    // fsync off: a test server that is thrown away needs no durability.
    const serverFlags = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${dir} -c fsync=off -c full_page_writes=off`;
    await run(
      path.join(PG15_BIN, 'pg_ctl'),
      ['-D', data, '-l', path.join(dir, 'server.log'), '-o', serverFlags, '-w', '-t', '60', 'start'],
      options,
    );
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`could not start PostgreSQL 15 from ${PG15_BIN}: ${(error as { stderr?: string }).stderr || error}`);
  }
  return {
    adminUrl: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    stop: async () => {
      await run(path.join(PG15_BIN, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop'], options).catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}
