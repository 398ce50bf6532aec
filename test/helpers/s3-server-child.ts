import S3rver from 's3rver';

/**
 * A real S3-compatible server (s3rver) in its own process, for
 * test/helpers/s3-server.ts: argv = directory, port, bucket. Prints
 * {"port":N} once listening. Its own process so a test can kill it as S3
 * "going away" and start it again on the same port and directory.
 */
const [directory, port, bucket] = process.argv.slice(2);
const server = new S3rver({
  address: '127.0.0.1',
  port: Number(port ?? 0),
  directory,
  silent: true,
  configureBuckets: [{ name: bucket ?? 'pgferry-test' }],
});
const address = (await server.run()) as { port: number };
process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
process.on('SIGTERM', () => process.exit(0));
