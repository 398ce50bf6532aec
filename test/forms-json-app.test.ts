import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TIER_LIMITS } from '../src/config.ts';
import type { Actor } from '../src/domain/forms.ts';
import { createJsonStore } from '../src/store/json/index.ts';
import type { Store } from '../src/store/types.ts';
import { BAD_FILES, JOBS, SUBMISSIONS, writeFormsCorpus } from './fixtures/forms-corpus.ts';
import { expectCode } from './helpers/expect.ts';

/**
 * The JSON backend on a `generated/` directory the forms app itself wrote
 * (every shape of REAL-FORMATS A, plus broken files): it works as it is —
 * records read through the format readers, broken files skipped in lists
 * and CORRUPT_DATA when asked for, and what the store writes back is still
 * the app's shape, so the app's own status polling keeps working.
 */

let dir: string;
let store: Store;
const ADMIN: Actor = { userId: 'ops', admin: true };

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-forms-app-'));
  await writeFormsCorpus(dir);
  store = createJsonStore({ dataDir: dir, tierLimits: DEFAULT_TIER_LIMITS });
});
afterAll(async () => {
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

const readJobFile = async (id: string) => JSON.parse(await readFile(path.join(dir, 'jobs', `${id}.json`), 'utf8'));

describe('an existing generated/ directory as DATA_DIR', () => {
  it('lists every readable submission to an admin, none to a user (the app kept no owner)', async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await store.submissions.list(ADMIN, { limit: 4, cursor });
      seen.push(...page.items.map((s) => s.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen.sort()).toEqual(Object.keys(SUBMISSIONS).sort());
    expect((await store.submissions.list({ userId: 'someone' })).items).toEqual([]);
    await expectCode(store.submissions.get({ userId: 'someone' }, 'sub_7d4be1c09a22'), 'NOT_FOUND');
  }, 30_000);

  it('derives module, site, date and files from each shape', async () => {
    expect(await store.submissions.get(ADMIN, 'sub_7d4be1c09a22')).toMatchObject({
      module: 'hvac_mep',
      siteName: 'ADNOC HQ L14',
      visitDate: '2025-12-20',
      status: 'completed',
      userId: null,
    });
    expect(await store.submissions.get(ADMIN, 'sub_19af03c7be58')).toMatchObject({ module: 'hvac_mep', siteName: 'Khalifa City Clinic' });
    const files = await store.uploadedFiles.list(ADMIN, 'sub_5b0e9c27d1a4');
    expect(files.map((f) => f.fileType)).toEqual(['signature', 'photo']);
  });

  it('gives CORRUPT_DATA naming the reason for a broken file', async () => {
    await expectCode(store.submissions.get(ADMIN, 'sub_aaaaaaaaaaa4'), 'CORRUPT_DATA');
    await expectCode(store.jobs.get(ADMIN, 'job_bbbbbbbbbbb1'), 'CORRUPT_DATA');
    expect(BAD_FILES.length).toBeGreaterThan(0);
  });

  it('reads every job shape: an HVAC failure written as done + results.error is failed', async () => {
    expect(await store.jobs.get(ADMIN, 'job_d3f1a2b0c9e8')).toMatchObject({ state: 'failed', submissionId: 'sub_19af03c7be58' });
    expect(await store.jobs.get(ADMIN, 'job_7c5e0a1d9b24')).toMatchObject({
      state: 'done',
      results: { excel_url: expect.any(String), pdf_url: expect.any(String) },
    });
    const jobs = await store.jobs.listBySubmission(ADMIN, 'sub_0c7d2e91fa35');
    expect(jobs.map((j) => j.id).sort()).toEqual(['job_2aa0d7f1e6c4', 'job_91be0c5d2a33']);
  });

  it('moves a job the app left stuck mid-run, writing the file as the app would', async () => {
    const before = await readJobFile('job_91be0c5d2a33');
    const failed = await store.jobs.fail(ADMIN, 'job_91be0c5d2a33', 'worker died (Render restart)');
    expect(failed).toMatchObject({ state: 'failed', progress: 60, error: 'worker died (Render restart)' });
    const after = await readJobFile('job_91be0c5d2a33');
    expect(after).toMatchObject({
      job_id: 'job_91be0c5d2a33',
      state: 'failed',
      progress: 60,
      results: { error: 'worker died (Render restart)' },
      meta: before.meta,
      created_at: before.created_at,
    });
    expect(typeof after.completed_at).toBe('number');
    await expectCode(store.jobs.progress(ADMIN, 'job_91be0c5d2a33', 70), 'CONFLICT');
  });

  it('keeps a submission the store writes readable as the app shape, with its owner', async () => {
    const alice: Actor = { userId: 'alice@example.com' };
    const s = await store.submissions.create(alice, { module: 'hvac_mep', formData: SUBMISSIONS.sub_7d4be1c09a22 as never });
    const file = JSON.parse(await readFile(path.join(dir, 'submissions', `${s.id}.json`), 'utf8'));
    expect(file).toMatchObject({ id: s.id, site_name: 'ADNOC HQ L14', items: expect.any(Array), user_id: alice.userId, status: 'pending' });
    expect((await store.submissions.get(alice, s.id)).siteName).toBe('ADNOC HQ L14');
    const job = await store.jobs.create(alice, s.id);
    expect(await readJobFile(job.id)).toMatchObject({
      job_id: job.id,
      state: 'started',
      progress: 0,
      results: [],
      meta: { submission_id: s.id, module: 'hvac_mep' },
      created_at: expect.any(Number),
    });
    expect(Object.keys(JOBS)).not.toContain(job.id);
  });

  it('keeps the audit log as daily JSON Lines', async () => {
    const entries = await store.audit.list({ userId: 'alice@example.com' });
    expect(entries.items.map((e) => e.action)).toEqual(['job.create', 'submission.create']);
    const day = entries.items[0]?.createdAt.slice(0, 10);
    const lines = (await readFile(path.join(dir, 'audit', `${day}.jsonl`), 'utf8')).trim().split('\n');
    expect(lines.map((l) => JSON.parse(l).action)).toContain('job.create');
  });
});
