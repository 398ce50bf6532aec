/**
 * bench/forms-import — `pgferry import` of the forms app's generated/ tree vs
 * the server's limit (issue 10, deliverable 6).
 *
 *   npm run bench:forms-import                   # 100,000 submissions, each with its job
 *   npm run bench:forms-import -- --scale 0.1    # 10,000, for a quicker run or a loaded machine
 *   TEST_DATABASE_URL=postgres://… npm run bench:forms-import
 *
 * Corpus: the real shapes of REAL-FORMATS A.1 in turn (hvac items, cleaning
 * payload, civil fields with cloud photos, cleaning wrapper), ~1-2 KB each;
 * every 20th carries a 50 KB inline base64 signature. One job per submission
 * in the states and result forms of A.2.
 *
 * In one run, on fresh databases with the same schema:
 * (a) psql \copy of the same rows, pre-converted (submissions, uploaded_files,
 *     jobs; text format; conversion not timed): the server's limit;
 * (b) `pgferry import --only submissions,jobs` end to end (a child process);
 * then `pgferry verify` on (b)'s database. Prints figures, asserts nothing.
 */
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { readJob } from '../src/formats/forms-job.ts';
import { readSubmission } from '../src/formats/forms-submission.ts';
import { parseJsonText } from '../src/formats/json-text.ts';
import { jsonbText } from '../src/transfer/canonical.ts';
import { formatTimestampUs } from '../src/transfer/validate.ts';
import { BenchDatabases, copyText, machine, mb, num, PSQL, REPO, run, secs, summaryNumber, timed } from './lib.ts';

const BIN = path.join(REPO, 'bin/pgferry.js');
const argv = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const SCALE = Number(option('--scale') ?? 1);
const COUNT = Math.max(20, Math.round(100_000 * SCALE));
const SIGNATURE = `data:image/png;base64,${'iVBORw0KGgoAAAANSUhEUgAAAfQAAADI'.repeat(1600)}`; // ~50 KB

const hex12 = (n: number) => n.toString(16).padStart(12, '0');
const cloud = (folder: string, n: number) => `https://res.cloudinary.com/injaaz/image/upload/v1734690000/${folder}/p${n}.jpg`;

/** Submission n in one of the real shapes, and its job. */
function documents(n: number): { sub: Record<string, unknown>; job: Record<string, unknown> } {
  const id = `sub_${hex12(n)}`;
  const jobId = `job_${hex12(n)}`;
  const created = 1734690000 + n * 7.123456;
  const iso = new Date(created * 1000).toISOString().replace('Z', '123');
  const signature = n % 20 === 0 ? SIGNATURE : '';
  let sub: Record<string, unknown>;
  let module: string;
  switch (n % 4) {
    case 0:
      module = 'hvac_mep';
      sub = {
        id,
        site_name: `ADNOC HQ L${n % 40}`,
        visit_date: '2025-12-20',
        tech_signature: null,
        opman_signature: null,
        items: Array.from({ length: 3 }, (_, i) => ({
          asset: `AHU-0${i}`,
          system: 'HVAC',
          description: 'Filter clogged, replaced and tested; follow-up in two weeks',
          photos: [{ field: `item_${i}_photo`, saved: null, path: null, url: cloud('hvac_photos', n * 10 + i), is_cloud: true }],
        })),
        inspector_signature: signature,
        base_url: 'https://injaaz-app.onrender.com',
        created_at: iso,
      };
      break;
    case 1:
      module = 'cleaning';
      sub = {
        client_name: 'Emaar',
        project_name: `Marina Heights ${n}`,
        date_of_visit: '2025-12-21',
        room_count: String(n % 90),
        scope_offices: 'True',
        scope_toilets: 'False',
        general_comments: 'Lobby floors need a deep clean before the handover inspection.',
        photos: [{ saved: null, path: null, url: cloud('cleaning_photos', n), index: 0, is_cloud: true }],
        tech_signature: { saved: null, path: null, url: cloud('signatures', n), is_cloud: true },
        contact_signature: signature,
        base_url: 'https://injaaz-app.onrender.com',
        submission_id: id,
        job_id: jobId,
        created_at: iso,
      };
      break;
    case 2:
      module = 'civil';
      sub = {
        id,
        fields: {
          date: '2025-12-22',
          project_name: `Mussafah Warehouse ${n}`,
          description_of_work: 'Floor screed',
          location_name: 'M-44',
          'work_desc[]': 'Screed 50mm',
          'work_qty[]': '120',
          'price[]': '18.5',
          photo_url_0: cloud('civil_photos', n),
          photo_url_1: cloud('civil_photos', n + 1),
          tech_signature: signature,
          op_signature: '',
        },
        files: [],
        base_url: 'https://injaaz-app.onrender.com',
      };
      break;
    default:
      module = 'cleaning';
      sub = {
        submission_id: id,
        data: {
          client_name: 'Aldar',
          project_name: `Yas Acres ${n}`,
          date_of_visit: '2025-12-22',
          photo_url_0: cloud('cleaning_photos', n),
          tech_signature: signature,
          contact_signature: '',
          photos: [],
          tech_signature_url: cloud('signatures', n),
        },
        timestamp: iso,
        base_url: 'https://injaaz-app.onrender.com',
      };
  }
  const state = n % 10 === 0 ? 'running' : n % 13 === 0 ? 'failed' : 'done';
  const results =
    state === 'running'
      ? []
      : state === 'failed'
        ? [{ error: 'Excel generator not available' }]
        : module === 'civil'
          ? [
              { filename: `Civil_${n}.xlsx`, url: `https://injaaz-app.onrender.com/generated/Civil_${n}.xlsx` },
              { filename: `Civil_${n}.pdf`, url: `https://injaaz-app.onrender.com/generated/Civil_${n}.pdf` },
            ]
          : {
              excel_url: `https://injaaz-app.onrender.com/generated/R_${n}.xlsx`,
              pdf_url: `https://injaaz-app.onrender.com/generated/R_${n}.pdf`,
            };
  const job: Record<string, unknown> = {
    job_id: jobId,
    state,
    progress: state === 'running' ? 60 : state === 'failed' ? 0 : 100,
    results,
    meta: { submission_id: id, module },
    created_at: created + 0.0031,
  };
  if (state === 'done') job.completed_at = created + 9.5;
  return { sub, job };
}

async function writeCorpus(dir: string): Promise<{ bytes: number }> {
  await mkdir(path.join(dir, 'submissions'), { recursive: true });
  await mkdir(path.join(dir, 'jobs'), { recursive: true });
  let bytes = 0;
  for (let n = 0; n < COUNT; n++) {
    const { sub, job } = documents(n);
    const subText = JSON.stringify(sub, null, 2);
    const jobText = JSON.stringify(job);
    const subId = (sub.id ?? sub.submission_id) as string;
    await writeFile(path.join(dir, 'submissions', `${subId}.json`), subText);
    await writeFile(path.join(dir, 'jobs', `${job.job_id as string}.json`), jobText);
    bytes += subText.length + jobText.length;
  }
  return { bytes };
}

/**
 * The rows pgferry would write, as COPY text files. In a fresh database the
 * identity gives submission k (in file order) id k, so files and jobs name
 * their submission by that number.
 */
async function preconvert(dir: string, out: string): Promise<{ submissions: string; files: string; jobs: string; rows: number }> {
  const subs: string[] = [];
  const files: string[] = [];
  const jobs: string[] = [];
  const idOf = new Map<string, number>();
  const names = (await readdir(path.join(dir, 'submissions'))).sort();
  for (const name of names) {
    const result = readSubmission(parseJsonText(await readFile(path.join(dir, 'submissions', name), 'utf8')), {
      fileKey: name.slice(0, -5),
      fallbackUs: 0,
    });
    if (!result.ok) throw new Error(`${name}: ${result.reason}`);
    const r = result.row;
    const id = subs.length + 1;
    idOf.set(r.id, id);
    const created = formatTimestampUs(r.createdUs);
    subs.push(
      [r.id, r.module, r.userId, r.status, r.siteName, r.visitDate, jsonbText(r.formData), created, r.submittedByIp]
        .map(copyText)
        .join('\t'),
    );
    for (const f of r.files) {
      files.push(
        [
          String(id),
          f.field,
          f.url,
          f.publicId,
          f.fileType,
          f.originalFilename,
          f.fileSize === null ? null : String(f.fileSize),
          String(f.isCloud),
          created,
        ]
          .map(copyText)
          .join('\t'),
      );
    }
  }
  for (const name of (await readdir(path.join(dir, 'jobs'))).sort()) {
    const result = readJob(parseJsonText(await readFile(path.join(dir, 'jobs', name), 'utf8')), { fileKey: name.slice(0, -5) });
    if (!result.ok) throw new Error(`${name}: ${result.reason}`);
    const j = result.row;
    const link = j.submissionId === null ? undefined : idOf.get(j.submissionId);
    const ts = (us: number | null) => (us === null ? null : formatTimestampUs(us));
    jobs.push(
      [
        j.jobId,
        link === undefined ? null : String(link),
        j.state,
        String(j.progress),
        j.results === null ? null : jsonbText(j.results),
        j.excelUrl,
        j.pdfUrl,
        j.errorMessage,
        j.meta === null ? null : jsonbText(j.meta),
        ts(j.createdUs),
        ts(j.startedUs),
        ts(j.completedUs),
      ]
        .map(copyText)
        .join('\t'),
    );
  }
  const paths = { submissions: path.join(out, 'submissions.tsv'), files: path.join(out, 'files.tsv'), jobs: path.join(out, 'jobs.tsv') };
  await writeFile(paths.submissions, `${subs.join('\n')}\n`);
  await writeFile(paths.files, files.length ? `${files.join('\n')}\n` : '');
  await writeFile(paths.jobs, `${jobs.join('\n')}\n`);
  return { ...paths, rows: subs.length + files.length + jobs.length };
}

async function copyRows(url: string, tsv: { submissions: string; files: string; jobs: string }): Promise<void> {
  const result = await run(PSQL, [
    url,
    '-v',
    'ON_ERROR_STOP=1',
    '-c',
    `\\copy submissions (submission_id, module, user_id, status, site_name, visit_date, form_data, created_at, submitted_by_ip) from '${tsv.submissions}'`,
    '-c',
    `\\copy uploaded_files (submission_id, field, cloudinary_url, cloudinary_public_id, file_type, original_filename, file_size, is_cloud, uploaded_at) from '${tsv.files}'`,
    '-c',
    `\\copy jobs (job_id, submission_id, status, progress, results, excel_url, pdf_url, error_message, meta, created_at, started_at, completed_at) from '${tsv.jobs}'`,
  ]);
  if (result.code !== 0) throw new Error(`psql failed: ${result.stderr}`);
}

async function main() {
  const work = await mkdtemp(path.join(os.tmpdir(), 'pgferry-bench-forms-'));
  await chmod(work, 0o755);
  let adminUrl = process.env.TEST_DATABASE_URL;
  let stopServer = async () => {};
  if (!adminUrl) {
    const server = await startEmbeddedPostgres({ clusterDir: path.join(work, 'cluster'), persistent: false });
    adminUrl = server.url;
    stopServer = server.stop;
  }
  const databases = new BenchDatabases(adminUrl);
  try {
    const about = await machine(databases.sql);
    const dir = path.join(work, 'generated');
    const { bytes } = (await timed(`corpus (${num(COUNT)} submissions + jobs)`, () => writeCorpus(dir))).value;
    const tsv = (await timed('pre-convert rows for \\copy (not part of any figure)', () => preconvert(dir, work))).value;
    const tsvBytes = (await stat(tsv.submissions)).size + (await stat(tsv.files)).size + (await stat(tsv.jobs)).size;

    const copyUrl = await databases.fresh('formscopy');
    const copy = await timed('(a) psql \\copy', () => copyRows(copyUrl, tsv));

    const importUrl = await databases.fresh('formsimport');
    const imported = await timed('(b) pgferry import', () =>
      run(process.execPath, [BIN, 'import', '--from', dir, '--to', importUrl, '--only', 'submissions,jobs']),
    );
    if (imported.value.code !== 0)
      throw new Error(`import failed (${imported.value.code}): ${imported.value.stdout}\n${imported.value.stderr}`);
    const importRss = Math.max(imported.value.peakRssMb, summaryNumber(imported.value.stdout, /peak RSS (\d+) MB/));

    await databases.checkpoint();
    const verified = await timed('pgferry verify', () =>
      run(process.execPath, [BIN, 'verify', '--from', dir, '--to', importUrl, '--only', 'submissions,jobs']),
    );
    if (verified.value.code !== 0) throw new Error(`verify failed (${verified.value.code}): ${verified.value.stdout}`);

    const perSec = (ms: number) => (COUNT * 1000) / ms;
    const lines = [
      '',
      'bench/forms-import — pgferry import of the forms app vs the server limit',
      `machine: ${about}`,
      `corpus:  ${num(COUNT)} submissions + ${num(COUNT)} jobs, ${mb(bytes)} MB of JSON (every 20th submission with a 50 KB inline signature); ${num(tsv.rows)} rows, ${mb(tsvBytes)} MB as COPY text`,
      '',
      `(a) psql \\copy, pre-converted rows   ${secs(copy.ms).padStart(9)}   ${num(perSec(copy.ms)).padStart(8)} submissions/s`,
      `(b) pgferry import (end to end)       ${secs(imported.ms).padStart(9)}   ${num(perSec(imported.ms)).padStart(8)} submissions/s   peak RSS ${importRss} MB`,
      '',
      `import / \\copy   ${(copy.ms / imported.ms).toFixed(2)}×`,
      `verify           ${secs(verified.ms)}, ${num(perSec(verified.ms))} submissions/s; peak RSS ${verified.value.peakRssMb} MB`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await databases.close();
    await stopServer();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
