/**
 * The limit for bench/files-move.ts: an `aws s3 sync`-style bulk copy with
 * the SDK alone — every file under DIR to the bucket, CONCURRENCY at a time,
 * no database, no read-back. argv: dir, concurrency; S3 settings from the env.
 */
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';

const [dir = '.', concurrency = '8'] = process.argv.slice(2);
const client = new S3Client({
  region: process.env.AWS_REGION,
  endpoint: process.env.S3_ENDPOINT,
  forcePathStyle: true,
  credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? '', secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? '' },
});
const files = (await readdir(dir, { recursive: true, withFileTypes: true }))
  .filter((e) => e.isFile())
  .map((e) => path.join(e.parentPath, e.name));
let next = 0;
let bytes = 0;
const started = performance.now();
await Promise.all(
  Array.from({ length: Number(concurrency) }, async () => {
    while (next < files.length) {
      const file = files[next++]!;
      bytes += (await stat(file)).size;
      const key = `sdk-baseline/${path.relative(dir, file)}`;
      await new Upload({ client, params: { Bucket: process.env.S3_BUCKET_NAME, Key: key, Body: createReadStream(file) } }).done();
    }
  }),
);
process.stdout.write(`${JSON.stringify({ objects: files.length, bytes, ms: performance.now() - started })}\n`);
client.destroy();
