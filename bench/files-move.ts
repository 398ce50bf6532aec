/**
 * `pgferry files move --to s3` against the limit: N objects (log-uniform
 * sizes, 1 KB–5 MB) in the local store → S3 (s3rver on loopback), by the
 * mover (copy, read back, sha256 check, row switch and file_moves row per
 * object) and by a bulk SDK copy of the same files (no database, no check).
 *
 *   node bench/files-move.ts                 # BENCH_OBJECTS=1000, BENCH_CONCURRENCY=8
 *   BENCH_OBJECTS=10000 node bench/files-move.ts
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { withDatabase } from '../src/db/database.ts';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { Migrator } from '../src/schema/migrator.ts';
import { startS3Server } from '../test/helpers/s3-server.ts';
import { mb, REPO, run, secs } from './lib.ts';

const OBJECTS = Number(process.env.BENCH_OBJECTS ?? 1000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const MIN = 1024;
const MAX = 5 * 1024 * 1024;

const logUniform = () => Math.round(Math.exp(Math.log(MIN) + Math.random() * (Math.log(MAX) - Math.log(MIN))));

const tmp = await mkdtemp(path.join(os.tmpdir(), 'pgferry-bench-files-'));
await chmod(tmp, 0o755); // as root, PostgreSQL runs as `postgres` and must traverse it
const pg = await startEmbeddedPostgres({ clusterDir: path.join(tmp, 'cluster'), persistent: false });
const s3 = await startS3Server('pgferry-bench');
try {
  const admin = postgres(pg.url, { max: 1, onnotice: () => {} });
  await admin.unsafe('create database bench_files');
  await admin.end();
  const url = withDatabase(pg.url, 'bench_files');
  const sql = postgres(url, { max: 2, onnotice: () => {} });
  await new Migrator(sql as never, {}).up();

  const dataDir = path.join(tmp, 'data');
  const filesDir = path.join(dataDir, 'files');
  let total = 0;
  const ids: string[] = [];
  const keys: string[] = [];
  const sizes: number[] = [];
  const chunk = randomBytes(MAX);
  for (let i = 0; i < OBJECTS; i++) {
    const key = `uploads/2026/12/${randomUUID()}`;
    const size = logUniform();
    await mkdir(path.dirname(path.join(filesDir, key)), { recursive: true });
    await writeFile(path.join(filesDir, key), chunk.subarray(0, size));
    ids.push(randomUUID());
    keys.push(key);
    sizes.push(size);
    total += size;
  }
  await sql`insert into uploads (id, user_id, filename, storage, file_key, file_size)
            select id, 'bench', 'f.bin', 'local', k, s from unnest(${ids}::uuid[], ${keys}::text[], ${sizes}::int8[]) as t(id, k, s)`;
  await sql.end();
  process.stderr.write(`${OBJECTS} objects, ${mb(total)} MB in ${filesDir}\n`);

  const env = {
    DATA_DIR: dataDir,
    S3_BUCKET_NAME: s3.bucket,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: s3.settings.accessKeyId ?? '',
    AWS_SECRET_ACCESS_KEY: s3.settings.secretAccessKey ?? '',
    S3_ENDPOINT: s3.endpoint,
  };
  const sdk = await run(process.execPath, [path.join(REPO, 'bench/files-move-sdk.ts'), filesDir, String(CONCURRENCY)], env);
  if (sdk.code !== 0) throw new Error(`sdk copy failed: ${sdk.stderr}`);
  const sdkMs = (JSON.parse(sdk.stdout) as { ms: number }).ms;

  const started = performance.now();
  const mover = await run(
    process.execPath,
    [path.join(REPO, 'bin/pgferry.js'), 'files', 'move', '--to', 's3', '--db', url, '--concurrency', String(CONCURRENCY)],
    env,
  );
  const moverMs = performance.now() - started;
  if (mover.code !== 0) throw new Error(`files move failed: ${mover.stdout}${mover.stderr}`);

  const line = (label: string, ms: number, rss: number) =>
    `${label.padEnd(28)} ${secs(ms).padStart(8)}  ${(OBJECTS / (ms / 1000)).toFixed(1).padStart(7)} objects/s  ${(total / 1_048_576 / (ms / 1000)).toFixed(1).padStart(6)} MB/s  peak RSS ${rss} MB`;
  process.stdout.write(
    `\nfiles move bench: ${OBJECTS} objects (1 KB–5 MB, log-uniform), ${mb(total)} MB, concurrency ${CONCURRENCY}, s3rver on loopback, ${os.cpus().length} cores\n`,
  );
  process.stdout.write(`${line('bulk SDK copy (the limit)', sdkMs, sdk.peakRssMb)}\n`);
  process.stdout.write(`${line('pgferry files move', moverMs, mover.peakRssMb)}  (process start and migration check included)\n`);
  process.stdout.write(
    `ratio: files move takes ${(moverMs / sdkMs).toFixed(2)}× the bulk copy's time (it also reads every object back and hashes it)\n`,
  );
} finally {
  await s3.close();
  await pg.stop();
  await rm(tmp, { recursive: true, force: true });
}
