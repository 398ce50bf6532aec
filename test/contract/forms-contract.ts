import { describe, expect, it } from 'vitest';
import type { Actor } from '../../src/domain/forms.ts';
import type { Store } from '../../src/store/types.ts';
import { expectCode } from '../helpers/expect.ts';
import type { TestClock } from './clock.ts';

/**
 * Seed 002's repositories in the one Store contract (runStoreContract calls
 * this), so JSON files, PostgreSQL and the hybrid mix pass the same tests:
 * isolation, derived columns, keyset pages, the job state machine, the audit
 * entry of every change (and none for a refused one), retention.
 */

let counter = 0;
const user = (label = 'f'): Actor => ({ userId: `${label}-${process.pid}-${++counter}-${Math.random().toString(36).slice(2, 8)}` });
const ADMIN: Actor = { userId: 'forms-admin', admin: true };

/** A civil "fields" submission (REAL-FORMATS A.1, S1c) and a flat hvac one (S3). */
const civil = (project = 'Mussafah Warehouse 7', date = '2025-12-22') => ({
  module: 'civil',
  formData: {
    fields: { date, project_name: project, tech_signature: 'data:image/png;base64,iVBORw0KGgo=', 'work_qty[]': '120' },
    files: [],
    base_url: 'https://injaaz-app.onrender.com',
  },
});
const hvac = (site = 'ADNOC HQ L14', date = '2025-12-20') => ({
  module: 'hvac_mep',
  formData: { site_name: site, visit_date: date, tech_signature: null, items: [{ asset: 'AHU-03', photos: [] }], n: 1.5 },
});

export function runFormsContract(getStore: () => Store, clock: TestClock): void {
  describe('forms: submissions', () => {
    it('creates a submission keeping form_data whole and deriving site name and visit date', async () => {
      const store = getStore();
      const alice = user();
      const created = await store.submissions.create(alice, civil());
      expect(created).toMatchObject({
        userId: alice.userId,
        module: 'civil',
        status: 'pending',
        siteName: 'Mussafah Warehouse 7',
        visitDate: '2025-12-22',
      });
      expect(created.id).toMatch(/^sub_[0-9a-f]{12}$/);
      // Every key of the document is kept (the JSON backend may add the app's own bookkeeping keys).
      expect(created.formData).toMatchObject(civil().formData);
      expect(await store.submissions.get(alice, created.id)).toEqual(created);
      const flat = await store.submissions.create(alice, hvac('Yas Mall', '2025-12-16'));
      expect(flat).toMatchObject({ module: 'hvac_mep', siteName: 'Yas Mall', visitDate: '2025-12-16' });
      const undated = await store.submissions.create(alice, { module: 'custom_app', formData: { note: 'no site, no date' } });
      expect(undated).toMatchObject({ siteName: null, visitDate: null, module: 'custom_app' });
      expect(undated.formData).toMatchObject({ note: 'no site, no date' });
    });

    it('isolates users: another user gets NOT_FOUND; a submission without a user is for admins only', async () => {
      const store = getStore();
      const alice = user();
      const bob = user();
      const mine = await store.submissions.create(alice, hvac());
      await expectCode(store.submissions.get(bob, mine.id), 'NOT_FOUND');
      await expectCode(store.submissions.updateStatus(bob, mine.id, 'completed'), 'NOT_FOUND');
      await expectCode(store.submissions.delete(bob, mine.id), 'NOT_FOUND');
      await expectCode(store.jobs.create(bob, mine.id), 'NOT_FOUND');
      await expectCode(store.uploadedFiles.list(bob, mine.id), 'NOT_FOUND');
      expect((await store.submissions.list(bob)).items.map((s) => s.id)).not.toContain(mine.id);
      expect(await store.submissions.get(ADMIN, mine.id)).toMatchObject({ userId: alice.userId });

      const orphan = await store.submissions.create(ADMIN, { ...hvac(), userId: null });
      expect(orphan.userId).toBeNull();
      await expectCode(store.submissions.get(alice, orphan.id), 'NOT_FOUND');
      await expectCode(store.submissions.get({ userId: ADMIN.userId }, orphan.id), 'NOT_FOUND');
      expect((await store.submissions.get(ADMIN, orphan.id)).id).toBe(orphan.id);
      await expectCode(store.submissions.create(alice, { ...hvac(), userId: bob.userId }), 'FORBIDDEN');
      await expectCode(store.submissions.create(alice, { ...hvac(), userId: null }), 'FORBIDDEN');
    });

    it('refuses bad input and a taken id', async () => {
      const store = getStore();
      const alice = user();
      const id = `sub_${Math.random().toString(16).slice(2, 14).padEnd(12, '0')}`;
      await store.submissions.create(alice, { ...hvac(), id });
      await expectCode(store.submissions.create(alice, { ...hvac(), id }), 'CONFLICT');
      await expectCode(store.submissions.create(alice, { ...hvac(), id: '../x' }), 'INVALID_INPUT');
      await expectCode(store.submissions.create(alice, { ...hvac(), module: 'HVAC MEP' }), 'INVALID_INPUT');
      await expectCode(store.submissions.create(alice, { module: 'civil', formData: [] as never }), 'INVALID_INPUT');
      await expectCode(store.submissions.create(alice, { ...hvac(), status: 'draft' as never }), 'INVALID_INPUT');
      await expectCode(store.submissions.updateStatus(alice, id, 'done' as never), 'INVALID_INPUT');
      await expectCode(store.submissions.get({ userId: '' }, id), 'INVALID_INPUT');
      await expectCode(store.submissions.list(alice, { cursor: 'nope' }), 'INVALID_INPUT');
      await expectCode(store.submissions.list(alice, { visitDateFrom: 'yesterday' }), 'INVALID_INPUT');
    });

    it('lists newest first with filters and keyset pages', async () => {
      const store = getStore();
      const alice = user();
      const ids: string[] = [];
      for (let i = 0; i < 7; i++) {
        clock.set(`2031-05-01T10:00:0${i}.000Z`);
        const input = i % 2 === 0 ? hvac(`Site ${i}`, `2025-12-1${i}`) : civil(`Tower ${i}`, `2025-12-1${i}`);
        ids.push((await store.submissions.create(alice, input)).id);
      }
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await store.submissions.list(alice, { limit: 3, cursor });
        seen.push(...page.items.map((s) => s.id));
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      expect(seen).toEqual([...ids].reverse());

      const hvacOnly = await store.submissions.list(alice, { module: 'hvac_mep' });
      expect(hvacOnly.items.map((s) => s.id)).toEqual([ids[6], ids[4], ids[2], ids[0]]);
      const dated = await store.submissions.list(alice, { visitDateFrom: '2025-12-12', visitDateTo: '2025-12-14' });
      expect(dated.items.map((s) => s.visitDate)).toEqual(['2025-12-14', '2025-12-13', '2025-12-12']);
      const site = await store.submissions.list(alice, { siteName: 'tower' });
      expect(site.items.map((s) => s.siteName)).toEqual(['Tower 5', 'Tower 3', 'Tower 1']);
      await store.submissions.updateStatus(alice, ids[3] as string, 'completed');
      const done = await store.submissions.list(alice, { status: 'completed' });
      expect(done.items.map((s) => s.id)).toEqual([ids[3]]);
    });

    it('updates the status and deletes a submission with its jobs and files', async () => {
      const store = getStore();
      const alice = user();
      const s = await store.submissions.create(alice, hvac());
      const updated = await store.submissions.updateStatus(alice, s.id, 'processing');
      expect(updated.status).toBe('processing');
      const job = await store.jobs.create(alice, s.id, { module: 'hvac_mep' });
      await store.uploadedFiles.add(alice, s.id, { url: 'https://res.cloudinary.com/x/a.jpg', fileType: 'photo', isCloud: true });
      await store.submissions.delete(alice, s.id);
      await expectCode(store.submissions.get(alice, s.id), 'NOT_FOUND');
      await expectCode(store.jobs.get(ADMIN, job.id), 'NOT_FOUND');
      await expectCode(store.uploadedFiles.list(ADMIN, s.id), 'NOT_FOUND');
      await expectCode(store.submissions.delete(alice, s.id), 'NOT_FOUND');
    });
  });

  describe('forms: jobs', () => {
    it('creates a job linked to its submission as the app does (meta.submission_id)', async () => {
      const store = getStore();
      const alice = user();
      const s = await store.submissions.create(alice, civil());
      const job = await store.jobs.create(alice, s.id, { project_name: 'X' });
      expect(job).toMatchObject({
        submissionId: s.id,
        state: 'started',
        progress: 0,
        results: [],
        error: null,
        meta: { submission_id: s.id, module: 'civil', project_name: 'X' },
        startedAt: null,
        completedAt: null,
      });
      expect(job.id).toMatch(/^job_[0-9a-f]{12}$/);
      expect(await store.jobs.get(alice, job.id)).toEqual(job);
      await expectCode(store.jobs.get(user(), job.id), 'NOT_FOUND');
      const second = await store.jobs.create(alice, s.id);
      expect((await store.jobs.listBySubmission(alice, s.id)).map((j) => j.id).sort()).toEqual([job.id, second.id].sort());
    });

    it('runs started → running → done and refuses every illegal transition with CONFLICT', async () => {
      const store = getStore();
      const alice = user();
      const s = await store.submissions.create(alice, hvac());
      const job = await store.jobs.create(alice, s.id);
      const running = await store.jobs.start(alice, job.id);
      expect(running).toMatchObject({ state: 'running', progress: 0 });
      expect(running.startedAt).not.toBeNull();
      await expectCode(store.jobs.start(alice, job.id), 'CONFLICT');
      expect((await store.jobs.progress(alice, job.id, 40)).progress).toBe(40);
      expect((await store.jobs.progress(alice, job.id, 40)).progress).toBe(40);
      await expectCode(store.jobs.progress(alice, job.id, 39), 'CONFLICT');
      await expectCode(store.jobs.progress(alice, job.id, 101), 'INVALID_INPUT');
      await expectCode(store.jobs.progress(alice, job.id, 50.5), 'INVALID_INPUT');
      const results = { excel_url: 'https://x/r.xlsx', pdf_url: 'https://x/r.pdf' };
      const done = await store.jobs.finish(alice, job.id, results);
      expect(done).toMatchObject({ state: 'done', progress: 100, results, error: null });
      expect(done.completedAt).not.toBeNull();
      await expectCode(store.jobs.progress(alice, job.id, 100), 'CONFLICT');
      await expectCode(store.jobs.fail(alice, job.id, 'late'), 'CONFLICT');
      await expectCode(store.jobs.finish(alice, job.id, []), 'CONFLICT');
      await expectCode(store.jobs.start(alice, job.id), 'CONFLICT');
      expect(await store.jobs.get(alice, job.id)).toEqual(done);
      await expectCode(store.jobs.start(alice, 'job_000000000000'), 'NOT_FOUND');
      await expectCode(store.jobs.start(user(), job.id), 'NOT_FOUND');
    });

    it('fails a job with results {error}; progress moves a started job to running', async () => {
      const store = getStore();
      const alice = user();
      const s = await store.submissions.create(alice, civil());
      const job = await store.jobs.create(alice, s.id);
      expect((await store.jobs.progress(alice, job.id, 10)).state).toBe('running');
      const failed = await store.jobs.fail(alice, job.id, 'Excel generator not available');
      expect(failed).toMatchObject({
        state: 'failed',
        results: { error: 'Excel generator not available' },
        error: 'Excel generator not available',
      });
      await expectCode(store.jobs.start(alice, job.id), 'CONFLICT');
      const direct = await store.jobs.create(alice, s.id);
      expect((await store.jobs.finish(alice, direct.id, [{ filename: 'a.pdf', url: 'https://x/a.pdf' }])).state).toBe('done');
    });

    it('keeps the state machine under concurrent transitions: exactly one finish wins', async () => {
      const store = getStore();
      const alice = user();
      const s = await store.submissions.create(alice, hvac());
      const job = await store.jobs.create(alice, s.id);
      const outcomes = await Promise.allSettled([
        store.jobs.finish(alice, job.id, { excel: 'a' }),
        store.jobs.fail(alice, job.id, 'b'),
        store.jobs.finish(alice, job.id, { excel: 'c' }),
        store.jobs.fail(alice, job.id, 'd'),
      ]);
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      const entries = await store.audit.list({ resourceId: job.id });
      const actions = entries.items.map((e) => e.action);
      expect(actions).toHaveLength(2);
      expect(actions[1]).toBe('job.create');
      expect(actions[0]).toMatch(/^job\.(finish|fail)$/);
    });

    it('purges finished jobs past retention, never a started or running one', async () => {
      const store = getStore();
      const alice = user();
      const s = await store.submissions.create(alice, hvac());
      clock.set(new Date(Date.now() - 10 * 86_400_000));
      const oldDone = await store.jobs.create(alice, s.id);
      await store.jobs.finish(alice, oldDone.id, { excel: 'x' });
      const oldFailed = await store.jobs.create(alice, s.id);
      await store.jobs.fail(alice, oldFailed.id, 'boom');
      const oldRunning = await store.jobs.create(alice, s.id);
      await store.jobs.progress(alice, oldRunning.id, 60);
      const oldStarted = await store.jobs.create(alice, s.id);
      clock.reset();
      const recentDone = await store.jobs.create(alice, s.id);
      await store.jobs.finish(alice, recentDone.id, []);

      const { purged } = await store.jobs.purgeFinished('7d', ADMIN);
      expect(purged).toBeGreaterThanOrEqual(2);
      const left = (await store.jobs.listBySubmission(alice, s.id)).map((j) => j.id).sort();
      expect(left).toEqual([oldRunning.id, oldStarted.id, recentDone.id].sort());
      await expectCode(store.jobs.purgeFinished('soon'), 'INVALID_INPUT');
      const purgeEntries = await store.audit.list({ action: 'jobs.purge' });
      expect(purgeEntries.items[0]?.details).toMatchObject({ count: purged });
    });
  });

  describe('forms: uploaded files', () => {
    it('adds and lists the files of a submission', async () => {
      const store = getStore();
      const alice = user();
      const s = await store.submissions.create(alice, hvac());
      const a = await store.uploadedFiles.add(alice, s.id, {
        field: 'item_0_photo',
        url: 'https://res.cloudinary.com/injaaz/image/upload/v1/hvac_photos/z9y8x7.jpg',
        fileType: 'photo',
        isCloud: true,
        fileSize: 1234,
      });
      expect(a).toMatchObject({ submissionId: s.id, field: 'item_0_photo', isCloud: true, fileSize: 1234, publicId: null });
      const b = await store.uploadedFiles.add(alice, s.id, { url: '/generated/uploads/sig.png', fileType: 'signature' });
      expect(b.isCloud).toBe(false);
      expect((await store.uploadedFiles.list(alice, s.id)).map((f) => f.url)).toEqual([a.url, b.url]);
      await expectCode(store.uploadedFiles.add(user(), s.id, { url: 'x' }), 'NOT_FOUND');
      await expectCode(store.uploadedFiles.add(alice, s.id, { url: 'x', fileSize: -1 }), 'INVALID_INPUT');
      await expectCode(store.uploadedFiles.add(alice, s.id, {} as never), 'INVALID_INPUT');
    });
  });

  describe('forms: audit', () => {
    it('records one entry per change, with who, what and where; none for a refused change', async () => {
      const store = getStore();
      const alice = { ...user(), ip: '203.0.113.7', userAgent: 'form.js' };
      const s = await store.submissions.create(alice, hvac());
      const job = await store.jobs.create(alice, s.id);
      await store.jobs.start(alice, job.id);
      await expectCode(store.jobs.start(alice, job.id), 'CONFLICT');
      await expectCode(store.jobs.progress(user(), job.id, 5), 'NOT_FOUND');
      await store.uploadedFiles.add(alice, s.id, { url: 'https://x/p.jpg' });
      await store.submissions.updateStatus(alice, s.id, 'completed');

      const bySubmission = await store.audit.list({ resourceId: s.id });
      expect(bySubmission.items.map((e) => e.action)).toEqual(['submission.status', 'file.add', 'submission.create']);
      expect(bySubmission.items[2]).toMatchObject({
        userId: alice.userId,
        resourceType: 'submission',
        ip: '203.0.113.7',
        userAgent: 'form.js',
      });
      const byJob = await store.audit.list({ resourceId: job.id });
      expect(byJob.items.map((e) => e.action)).toEqual(['job.start', 'job.create']);
      expect(byJob.items[0]?.details).toMatchObject({ from: 'started', to: 'running' });
      const mine = await store.audit.list({ userId: alice.userId });
      expect(mine.items).toHaveLength(5);
    });

    it('records entries directly and pages newest first', async () => {
      const store = getStore();
      const who = user().userId;
      for (let i = 0; i < 5; i++) {
        clock.set(`2032-02-0${i + 1}T08:00:00.000Z`);
        await store.audit.record({ userId: who, action: 'login', details: { n: i } });
      }
      const seen: unknown[] = [];
      let cursor: string | undefined;
      do {
        const page = await store.audit.list({ userId: who, limit: 2, cursor });
        seen.push(...page.items.map((e) => e.details?.n));
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      expect(seen).toEqual([4, 3, 2, 1, 0]);
      const window = await store.audit.list({ userId: who, from: '2032-02-02T00:00:00Z', to: '2032-02-04T00:00:00Z' });
      expect(window.items.map((e) => e.details?.n)).toEqual([2, 1]);
      await expectCode(store.audit.record({ action: 'has space' }), 'INVALID_INPUT');
      await expectCode(store.audit.list({ from: 'yesterday' }), 'INVALID_INPUT');
    });
  });
}
