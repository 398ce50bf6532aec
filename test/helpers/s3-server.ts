import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { S3Settings } from '../../src/objects/s3.ts';

/**
 * A real S3-compatible server on loopback for the tests: s3rver (npm), run
 * in a child process with its own data directory. Never a mocked SDK: the
 * S3 driver speaks real HTTP with SigV4 signatures to it.
 *
 * `stop()` then `start()` again keeps the port and the objects, so a test
 * can make S3 "go away" mid-operation and come back.
 */
export interface S3TestServer {
  settings: Required<S3Settings>;
  endpoint: string;
  bucket: string;
  /** Kill the server (SIGKILL: it goes away, no goodbye). Objects stay on disk. */
  stop(): Promise<void>;
  /** Start it again on the same port with the same objects. */
  start(): Promise<void>;
  /** Stop and remove its directory. */
  close(): Promise<void>;
}

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 's3-server-child.ts');
/** s3rver's fixed credentials: it checks SigV4 signatures against these. */
const S3RVER_KEY = 'S3RVER';

export async function startS3Server(bucket = 'pgferry-test'): Promise<S3TestServer> {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'pgferry-s3rver-'));
  let child: ChildProcess | undefined;
  let port = 0;

  const start = async () => {
    const started = spawn(process.execPath, [CHILD, directory, String(port), bucket], { stdio: ['ignore', 'pipe', 'inherit'] });
    child = started;
    port = await readPort(started);
  };
  const stop = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null) return;
    const exited = once(running, 'exit');
    running.kill('SIGKILL');
    await exited;
  };

  await start();
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    bucket,
    settings: { bucket, region: 'us-east-1', accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_KEY, endpoint },
    stop,
    start,
    close: async () => {
      await stop();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

async function readPort(child: ChildProcess): Promise<number> {
  let output = '';
  const stdout = child.stdout;
  if (!stdout) throw new Error('s3rver child has no stdout');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`s3rver did not start: ${output}`)), 20_000);
    stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const line = output.split('\n').find((l) => l.startsWith('{'));
      if (line) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { port: number }).port);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`s3rver exited (${code}) before listening: ${output}`));
    });
  });
}
