import type { Database } from '../../../db/database.ts';
import type { CrossCheck } from '../types.ts';

/**
 * The link between the forms app's jobs and submissions. A job names its
 * submission only in `meta.submission_id` (the app's id), and the two kinds
 * load in separate batches and runs, in any order: after loading, every job
 * with no link that names a submission now in the database gets its link.
 * What stays unlinked is reported — as warnings, never rejects: the app
 * really wrote jobs whose submission write failed, and submissions with no
 * job at all (cleaning at 8790837).
 */

/** Give every unlinked job the submission its meta names, where that submission now exists. */
export async function linkJobs(db: Database): Promise<void> {
  await db.sql`
    update jobs j set submission_id = s.id
      from submissions s
     where j.submission_id is null and s.submission_id = j.meta ->> 'submission_id'`;
}

/** Jobs written since `since` whose meta names a submission that is not in the database. */
export async function jobsWithoutSubmission(db: Database, since: Date): Promise<CrossCheck[]> {
  const rows = await db.sql<{ job_id: string; source: string; link: string }[]>`
    select j.job_id, l.source, j.meta ->> 'submission_id' as link
      from jobs j join import_log l on l.kind = 'job' and l.record_key = j.job_id and l.status <> 'pruned' and l.imported_at >= ${since}
     where j.submission_id is null and j.meta ->> 'submission_id' is not null
     order by j.job_id`;
  return rows.map((r) => ({
    key: r.job_id,
    file: r.source,
    reason: `job of submission ${JSON.stringify(r.link.slice(0, 128))}, which is not in the database: imported without a link`,
  }));
}

/**
 * Submissions written since `since` that no job links to (after the 7-day
 * purge of jobs that is every older submission: only this run's are named).
 */
export async function submissionsWithoutJob(db: Database, since: Date): Promise<CrossCheck[]> {
  const rows = await db.sql<{ submission_id: string; source: string }[]>`
    select s.submission_id, l.source
      from submissions s
      join import_log l on l.kind = 'submission' and l.record_key = s.submission_id and l.status <> 'pruned' and l.imported_at >= ${since}
     where not exists (select 1 from jobs j where j.submission_id = s.id)
     order by s.submission_id`;
  return rows.map((r) => ({
    key: r.submission_id,
    file: r.source,
    reason: 'submission without a job (imported; no report job was found for it)',
  }));
}
