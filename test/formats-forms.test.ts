import { describe, expect, it } from 'vitest';
import { parseLocalTimestampUs } from '../src/formats/forms-common.ts';
import { jobStateOf, readJob, writeJob } from '../src/formats/forms-job.ts';
import { readSubmission, submissionStatusOf, writeSubmission } from '../src/formats/forms-submission.ts';
import { parseJsonText } from '../src/formats/json-text.ts';
import { JOBS, SUBMISSIONS, TOP_LEVEL_SUBMISSION } from './fixtures/forms-corpus.ts';

/**
 * src/formats/forms-*: the forms app's submission and job files (seed 002,
 * REAL-FORMATS.md section A), every real shape, read into one record.
 */

const sub = (id: string, options = {}) => {
  const result = readSubmission(SUBMISSIONS[id] ?? (TOP_LEVEL_SUBMISSION as Record<string, unknown>)[id], {
    fileKey: id,
    fallbackUs: 0,
    ...options,
  });
  if (!result.ok) throw new Error(result.reason);
  return result;
};
const job = (id: string, options = {}) => {
  const result = readJob(JOBS[id], { fileKey: id, ...options });
  if (!result.ok) throw new Error(result.reason);
  return result;
};
const us = (iso: string) => Date.parse(iso) * 1000;

describe('submissions: five layouts, two id keys', () => {
  it.each([
    ['sub_5b0e9c27d1a4', 'fields', 'civil', 'Al Reem Tower B', '2025-12-15'],
    ['sub_a41c7f0e93b2', 'fields', 'hvac_mep', 'Yas Mall Chiller Plant', '2025-12-16'],
    ['sub_0c7d2e91fa35', 'fields', 'civil', 'Mussafah Warehouse 7 \u0628\u0631\u062c', '2025-12-22'],
    ['sub_e3b27c05d9a1', 'work-items', 'civil', 'Saadiyat Villa 12', '2025-12-21'],
    ['sub_7d4be1c09a22', 'items', 'hvac_mep', 'ADNOC HQ L14', '2025-12-20'],
    ['sub_19af03c7be58', 'items', 'hvac_mep', 'Khalifa City Clinic', '2025-12-22'],
    ['sub_c2e7a90b1d43', 'payload', 'cleaning', 'Marina Heights', '2025-12-21'],
    ['sub_8b31f6d2a0ce', 'wrapper', 'cleaning', 'Yas Acres', '2025-12-22'],
    ['sub_9d8c7b6a5f4e', 'payload', 'cleaning', 'Palm Villa 3', '2025-12-19'],
  ])('%s: %s layout, module %s by layout rule, site and visit date derived', (id, layout, module, site, date) => {
    const { row } = sub(id, { fallbackUs: 0 });
    expect(row).toMatchObject({ id, layout, module, moduleSource: 'layout', siteName: site, visitDate: date, status: 'completed' });
    // Nothing is dropped: the whole document is form_data.
    expect(row.formData).toEqual(SUBMISSIONS[id] ?? (TOP_LEVEL_SUBMISSION as Record<string, unknown>)[id]);
  });

  it('the id comes from id or submission_id; a file name that differs wins, with a warning', () => {
    expect(readSubmission(SUBMISSIONS.sub_19af03c7be58).key).toBe('sub_19af03c7be58');
    expect(readSubmission(SUBMISSIONS.sub_5b0e9c27d1a4).key).toBe('sub_5b0e9c27d1a4');
    const renamed = readSubmission(SUBMISSIONS.sub_5b0e9c27d1a4, { fileKey: 'sub_111111111111', fallbackUs: 0 });
    expect(renamed.ok && renamed.row.id).toBe('sub_111111111111');
    expect(renamed.warnings.join()).toMatch(/differs from its file name/);
  });

  it('the module: the document, then a layout rule, then the job, then --module, else "unknown" with a warning', () => {
    // A layout rule beats the job (jobs are purged after 7 days; the module must not change then).
    expect(sub('sub_7d4be1c09a22', { jobModule: 'civil' }).row).toMatchObject({ module: 'hvac_mep', moduleSource: 'layout' });
    const ambiguous = { id: 'sub_123456789abc', fields: { remarks: 'x' }, created_at: '2025-12-01T00:00:00' };
    expect(readSubmission(ambiguous, { jobModule: 'civil', module: 'hvac_mep' })).toMatchObject({
      row: { module: 'civil', moduleSource: 'job' },
    });
    const optioned = readSubmission(ambiguous, { module: 'hvac_mep' });
    expect(optioned.ok && optioned.row).toMatchObject({ module: 'hvac_mep', moduleSource: 'option' });
    const unknown = readSubmission(ambiguous);
    expect(unknown.ok && unknown.row.module).toBe('unknown');
    expect(unknown.warnings.join()).toMatch(/module unknown/);
    const named = readSubmission({ ...ambiguous, module: 'cleaning' }, { jobModule: 'civil' });
    expect(named.ok && named.row.moduleSource).toBe('document');
  });

  it('times: naive created_at is UTC, naive `timestamp` is server-local (--source-timezone)', () => {
    expect(sub('sub_7d4be1c09a22').row.createdUs).toBe(us('2025-12-20T08:14:03.512Z') + 907);
    expect(sub('sub_19af03c7be58').row.createdUs).toBe(us('2025-12-22T12:40:55.104Z') + 330);
    expect(sub('sub_19af03c7be58', { sourceTimezone: 'Asia/Dubai' }).row.createdUs).toBe(us('2025-12-22T08:40:55.104Z') + 330);
    expect(sub('sub_7d4be1c09a22', { sourceTimezone: 'Asia/Dubai' }).row.createdUs).toBe(us('2025-12-20T08:14:03.512Z') + 907);
    // No time at all: the file time, with a warning; none given: rejected.
    expect(sub('sub_5b0e9c27d1a4', { fallbackUs: 42 }).row.createdUs).toBe(42);
    expect(readSubmission(SUBMISSIONS.sub_5b0e9c27d1a4)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/no usable created_at/),
    });
  });

  it('naive local times across a DST change', () => {
    expect(parseLocalTimestampUs('2025-07-01T12:00:00', 'Europe/Berlin')).toBe(us('2025-07-01T10:00:00Z'));
    expect(parseLocalTimestampUs('2025-01-01T12:00:00', 'Europe/Berlin')).toBe(us('2025-01-01T11:00:00Z'));
    expect(parseLocalTimestampUs('2025-01-01T12:00:00Z', 'Europe/Berlin')).toBe(us('2025-01-01T12:00:00Z'));
  });

  it('photos and signatures in their several places become file rows; inline base64 stays in form_data', () => {
    const files = (id: string) => sub(id, { fallbackUs: 0 }).row.files.map((f) => [f.field, f.fileType, f.isCloud]);
    expect(files('sub_5b0e9c27d1a4')).toEqual([
      ['tech_signature', 'signature', false],
      ['photo', 'photo', false],
    ]);
    expect(files('sub_a41c7f0e93b2')).toEqual([['photo', 'photo', false]]);
    expect(files('sub_0c7d2e91fa35')).toEqual([['photo_url_0', 'photo', true]]);
    expect(files('sub_e3b27c05d9a1')).toEqual([['work_items[0].photos[0]', 'photo', true]]);
    expect(files('sub_7d4be1c09a22')).toEqual([['item_0_photo', 'photo', true]]);
    expect(files('sub_3e4f5a6b7c8d')).toEqual([['tech_signature', 'signature', false]]);
    expect(files('sub_c2e7a90b1d43')).toEqual([
      ['photos[0]', 'photo', true],
      ['tech_signature', 'signature', true],
    ]);
    expect(files('sub_8b31f6d2a0ce')).toEqual([
      ['photo_url_0', 'photo', true],
      ['photo_url_1', 'photo', true],
      ['tech_signature_url', 'signature', true],
    ]);
    expect(files('sub_9d8c7b6a5f4e')).toEqual([
      ['photos[0]', 'photo', false],
      ['tech_signature', 'signature', false],
    ]);
    const s1c = sub('sub_0c7d2e91fa35').row;
    expect(s1c.files[0]!.publicId).toBe('civil_photos/qk3v9w1x2y');
    expect(s1c.inline).toEqual([{ place: 'fields.tech_signature', bytes: expect.any(Number) }]);
    expect(readSubmission(SUBMISSIONS.sub_0c7d2e91fa35, { inlineWarnBytes: 100, fallbackUs: 0 }).warnings.join()).toMatch(
      /fields.tech_signature is \d+ bytes \(over 100\): kept/,
    );
  });

  it('status words: the app and its database era mapped onto the seed', () => {
    expect(['draft', 'started', 'running', 'done', 'completed', 'failed', 'error'].map(submissionStatusOf)).toEqual([
      'pending',
      'processing',
      'processing',
      'completed',
      'completed',
      'failed',
      'failed',
    ]);
    expect(readSubmission({ ...(SUBMISSIONS.sub_7d4be1c09a22 as object), status: 'draft' })).toMatchObject({ row: { status: 'pending' } });
    expect(sub('sub_7d4be1c09a22', { jobState: 'running' }).row.status).toBe('processing');
  });

  it('rejects with a reason naming what is wrong', () => {
    const reason = (doc: unknown, fileKey?: string) => {
      const r = readSubmission(doc, { fileKey, fallbackUs: 0 });
      return r.ok ? 'ok' : r.reason;
    };
    expect(reason([1])).toMatch(/expected a JSON object, found a list/);
    expect(reason({ id: 'sub_aaaaaaaaaaaa', fields: 'x' })).toMatch(/fields must be an object, found a string/);
    expect(reason({ id: 'sub_aaaaaaaaaaaa', items: {} })).toMatch(/items must be a list/);
    expect(reason({ id: 'sub_aaaaaaaaaaaa', colour: 'blue' })).toMatch(/unknown submission shape/);
    expect(reason({ fields: {} })).toMatch(/no id or submission_id/);
    expect(reason({ id: 7, fields: {} })).toMatch(/id must be a string/);
    expect(reason({ id: '_3f9c1a7be2d4', fields: {} })).toMatch(/id rules/);
    expect(reason({ id: 'custom-id-1', fields: {} })).toBe('ok');
    expect(reason({ id: 'sub_aaaaaaaaaaaa', fields: {}, visit_date: '31/12/2025' })).toBe('ok');
  });

  it('writes the app shape back: an untouched document is unchanged, a new status or module is kept', () => {
    for (const id of Object.keys(SUBMISSIONS)) {
      const { row } = sub(id, { fallbackUs: 0 });
      expect(writeSubmission(row)).toEqual(SUBMISSIONS[id]);
    }
    const { row } = sub('sub_19af03c7be58');
    const written = writeSubmission({ ...row, status: 'failed', module: 'civil' });
    expect(written).toMatchObject({ submission_id: 'sub_19af03c7be58', status: 'failed', module: 'civil' });
    expect(readSubmission(written, { fileKey: row.id })).toMatchObject({ row: { status: 'failed', module: 'civil' } });
    const fresh = writeSubmission({ id: 'sub_0123456789ab', module: 'civil', status: 'pending', formData: { fields: {} } });
    expect(readSubmission({ ...fresh, created_at: '2025-01-01' })).toMatchObject({
      row: { id: 'sub_0123456789ab', module: 'civil', status: 'pending' },
    });
  });
});

describe('jobs', () => {
  it.each([
    ['job_4f0d8e2c7b19', 'started', 0, null, null, null],
    ['job_91be0c5d2a33', 'running', 60, null, null, null],
    ['job_2aa0d7f1e6c4', 'done', 100, /140312\.xlsx$/, /140313\.pdf$/, null],
    ['job_7c5e0a1d9b24', 'done', 100, /121410\.xlsx$/, /121411\.pdf$/, null],
    ['job_a0b1c2d3e4f5', 'done', 100, /Emaar\.xlsx$/, /Emaar\.pdf$/, null],
    ['job_d3f1a2b0c9e8', 'failed', 100, null, null, /cannot identify image/],
    ['job_60a7c3e1f5d2', 'failed', 0, null, null, /Errno 2/],
    ['job_0f3a9d1c2b7e', 'failed', 0, null, null, /application context/],
    ['job_e8d2c4b6a0f1', 'failed', 0, null, null, /Excel generator/],
    ['job_5a9e1c7d3b20', 'done', 100, /143009\.xlsx$/, /143010\.pdf$/, null],
  ])('%s: state %s, progress %d, the four forms of results', (id, state, progress, excel, pdf, error) => {
    const { row } = job(id);
    expect(row).toMatchObject({ jobId: id, state, progress, results: (JOBS[id] as { results: unknown }).results });
    const check = (value: string | null, pattern: RegExp | null) => (pattern ? expect(value).toMatch(pattern) : expect(value).toBeNull());
    check(row.excelUrl, excel);
    check(row.pdfUrl, pdf);
    check(row.errorMessage, error);
    // The link is only in meta.
    expect(row.submissionId).toBe((JOBS[id] as { meta: { submission_id: string } }).meta.submission_id);
  });

  it('HVAC "done" with results.error is a failed job, written back as the app wrote it', () => {
    const { row } = job('job_d3f1a2b0c9e8');
    expect(row).toMatchObject({ state: 'failed', writtenState: 'done' });
    expect(writeJob(row, JOBS.job_d3f1a2b0c9e8)).toEqual(JOBS.job_d3f1a2b0c9e8);
  });

  it('times: epoch floats, an ISO local completed_at, none', () => {
    expect(job('job_2aa0d7f1e6c4').row.createdUs).toBe(Math.round(1734861790.5530038 * 1e6));
    expect(job('job_60a7c3e1f5d2').row.completedUs).toBeNull();
    expect(job('job_e8d2c4b6a0f1').row.completedUs).toBe(us('2025-12-22T09:11:58.004Z') + 512);
    expect(job('job_e8d2c4b6a0f1', { sourceTimezone: 'Asia/Dubai' }).row.completedUs).toBe(us('2025-12-22T05:11:58.004Z') + 512);
  });

  it('state words and bad jobs', () => {
    expect(['pending', 'processing', 'completed', 'started', 'bogus'].map(jobStateOf)).toEqual([
      'started',
      'running',
      'done',
      'started',
      undefined,
    ]);
    const reason = (doc: unknown) => {
      const r = readJob(doc);
      return r.ok ? 'ok' : r.reason;
    };
    const base = { job_id: 'job_aaaaaaaaaaaa', state: 'running', progress: 10, meta: {}, created_at: 1734860000.5 };
    expect(reason({ ...base, state: 'exploded' })).toMatch(/unknown state "exploded"/);
    expect(reason({ ...base, state: undefined })).toMatch(/no state/);
    expect(reason({ ...base, progress: 'ten' })).toMatch(/progress must be a number/);
    expect(reason({ ...base, progress: 120 })).toMatch(/from 0 to 100/);
    expect(reason({ ...base, meta: [] })).toMatch(/meta must be an object/);
    expect(reason({ ...base, job_id: 5 })).toMatch(/job_id must be a string/);
    expect(reason({ ...base, created_at: undefined })).toMatch(/no usable created_at/);
    const noLink = readJob(base);
    expect(noLink.ok && noLink.row.submissionId).toBeNull();
    expect(noLink.warnings.join()).toMatch(/no meta.submission_id/);
  });

  it('writes every shape back unchanged, and a new job in the shape mark_job_started writes', () => {
    for (const [id, doc] of Object.entries(JOBS)) expect(writeJob(job(id).row, doc)).toEqual(doc);
    const created = writeJob({
      jobId: 'job_aaaaaaaaaaaa',
      submissionId: 'sub_bbbbbbbbbbbb',
      module: 'civil',
      state: 'started',
      progress: 0,
      results: [],
      meta: null,
      createdUs: 1734860000500000,
      completedUs: null,
    });
    expect(created).toEqual({
      job_id: 'job_aaaaaaaaaaaa',
      state: 'started',
      progress: 0,
      results: [],
      meta: { submission_id: 'sub_bbbbbbbbbbbb', module: 'civil' },
      created_at: 1734860000.5,
    });
  });

  it('reads what json-text parses (single-line Python json.dump)', () => {
    const text =
      '{"job_id": "job_aaaaaaaaaaaa", "state": "done", "progress": 100.0, "results": {"excel": "e.xlsx"}, "meta": {"submission_id": "sub_x"}, "created_at": 1734860000.0}';
    const r = readJob(parseJsonText(text));
    expect(r.ok && r.row).toMatchObject({ progress: 100, state: 'done', createdUs: 1734860000000000 });
  });
});
