/**
 * bench/compare — `pgferry import` and `verify` of two checkouts on the same corpus, in one run.
 *
 *   git archive <commit> | tar -x -C /tmp/pgferry-base && (cd /tmp/pgferry-base && npm ci --ignore-scripts)
 *   node bench/compare.ts --base /tmp/pgferry-base --new . --scale 0.2 --rounds 3
 *
 * Flags: --base DIR and --new DIR (checkouts, each with its own node_modules;
 * required), --scale F (corpus size, as bench/import.ts), --rounds N (default 3),
 * --dir DIR (corpus directory, reused when its parameters match), --jobs N
 * (import --jobs, default 2).
 *
 * Each checkout runs its own bin/pgferry.js into fresh databases that its own
 * `pgferry db up` migrated (two checkouts may differ in schema). Every round
 * alternates, so whatever else loads the machine falls on both alike:
 * psql \copy of the same rows (the server's limit, this checkout's schema),
 * base import, new import, base verify, new verify. It prints each run with the
 * load average at its start, then the medians. It asserts nothing.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { BenchDatabases, copyRows, corpus, machine, mb, num, preconvert, run, secs, timed } from './lib.ts';

const argv = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const SCALE = Number(option('--scale') ?? 0.2);
const ROUNDS = Number(option('--rounds') ?? 3);
const JOBS = Number(option('--jobs') ?? 2);
const USERS = Math.max(1, Math.round(2000 * SCALE));

interface Checkout {
  label: string;
  dir: string;
}

interface Figure {
  ms: number;
  rss: number;
  load: number;
}

const load = () => os.loadavg()[0]!;
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function pgferry(checkout: Checkout, args: string[]): Promise<Figure> {
  const started = load();
  const t = performance.now();
  const child = await run(process.execPath, [path.join(checkout.dir, 'bin/pgferry.js'), ...args], {}, checkout.dir);
  const ms = performance.now() - t;
  if (child.code !== 0) throw new Error(`${checkout.label}: pgferry ${args[0]} failed (${child.code}): ${child.stdout}\n${child.stderr}`);
  return { ms, rss: child.peakRssMb, load: started };
}

async function main() {
  const base = option('--base');
  const next = option('--new');
  if (!base || !next) throw new Error('usage: node bench/compare.ts --base DIR --new DIR [--scale F] [--rounds N] [--dir DIR] [--jobs N]');
  const checkouts: Checkout[] = [
    { label: 'base', dir: path.resolve(base) },
    { label: 'new', dir: path.resolve(next) },
  ];
  const work = await mkdtemp(path.join(os.tmpdir(), 'pgferry-bench-compare-'));
  await chmod(work, 0o755);
  let adminUrl = process.env.TEST_DATABASE_URL;
  let stopServer = async () => {};
  if (!adminUrl) {
    const server = await startEmbeddedPostgres({ clusterDir: path.join(work, 'cluster'), persistent: false });
    adminUrl = server.url;
    stopServer = server.stop;
  }
  const databases = new BenchDatabases(adminUrl);
  const migrateWith = (checkout: Checkout) => async (url: string) => {
    const child = await run(
      process.execPath,
      [path.join(checkout.dir, 'bin/pgferry.js'), 'db', 'up', '--database-url', url],
      {},
      checkout.dir,
    );
    if (child.code !== 0) throw new Error(`${checkout.label}: db up failed: ${child.stdout}\n${child.stderr}`);
  };
  try {
    const about = await machine(databases.sql);
    const data = (await timed(`corpus (${USERS} users)`, () => corpus(option('--dir') ?? path.join(work, 'corpus'), USERS))).value;
    const tsv = (await timed('pre-convert rows for \\copy', () => preconvert(data.dir, work))).value;
    const copies: Figure[] = [];
    const figures = new Map(checkouts.map((c) => [c.label, { import: [] as Figure[], verify: [] as Figure[] }]));
    const lines: string[] = [];
    const line = (label: string, f: Figure) => {
      const text = `  ${label.padEnd(14)} ${secs(f.ms).padStart(8)}  ${num((data.messages * 1000) / f.ms).padStart(8)} messages/s  peak RSS ${f.rss ? `${String(f.rss).padStart(3)} MB` : '     -'}  load ${f.load.toFixed(2)}`;
      lines.push(text);
      process.stderr.write(`${text}\n`);
    };

    for (let round = 1; round <= ROUNDS; round++) {
      lines.push(`round ${round}`);
      const copyUrl = await databases.fresh('copy');
      const copyLoad = load();
      const copy = await timed('psql \\copy', () => copyRows(copyUrl, tsv));
      copies.push({ ms: copy.ms, rss: 0, load: copyLoad });
      line('\\copy', copies.at(-1)!);
      const urls = new Map<string, string>();
      for (const c of checkouts) {
        const url = await databases.fresh(c.label, migrateWith(c));
        urls.set(c.label, url);
        const f = await pgferry(c, ['import', '--from', data.dir, '--to', url, '--jobs', String(JOBS)]);
        figures.get(c.label)!.import.push(f);
        line(`${c.label} import`, f);
      }
      for (const c of checkouts) {
        await databases.checkpoint();
        const f = await pgferry(c, ['verify', '--from', data.dir, '--to', urls.get(c.label)!]);
        figures.get(c.label)!.verify.push(f);
        line(`${c.label} verify`, f);
      }
      await databases.dropAll();
    }

    const copyMs = median(copies.map((f) => f.ms));
    const rate = (ms: number) => num((data.messages * 1000) / ms).padStart(8);
    const out = [
      '',
      'bench/compare — import and verify, two checkouts, same corpus, alternating',
      `machine: ${about}`,
      `corpus:  ${num(data.conversations)} conversations, ${num(data.messages)} messages, ${mb(data.bytes)} MB of JSON`,
      ...checkouts.map((c) => `${c.label.padEnd(5)}    ${c.dir}`),
      '',
      ...lines,
      '',
      `medians of ${ROUNDS} rounds (\\copy ${rate(copyMs)} messages/s):`,
      '           import msg/s  × \\copy  peak RSS   verify msg/s  × \\copy  peak RSS',
      ...checkouts.map((c) => {
        const f = figures.get(c.label)!;
        const im = median(f.import.map((x) => x.ms));
        const vm = median(f.verify.map((x) => x.ms));
        return `  ${c.label.padEnd(6)}   ${rate(im)}    ${(copyMs / im).toFixed(2).padStart(5)}   ${String(median(f.import.map((x) => x.rss))).padStart(4)} MB     ${rate(vm)}    ${(copyMs / vm).toFixed(2).padStart(5)}   ${String(median(f.verify.map((x) => x.rss))).padStart(4)} MB`;
      }),
    ];
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    await databases.close();
    await stopServer();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
