import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { ConversationSummary, Message } from '../../domain/conversations.ts';
import { type Job, newSubmissionId, type Submission, type UploadedFile } from '../../domain/forms.ts';
import { isValidRecordId, isValidUserId, newId } from '../../domain/ids.ts';
import type { UsageStatus } from '../../domain/usage.ts';
import type { ConversationRepository, JobRepository, SubmissionRepository, UploadedFileRepository, UsageRepository } from '../types.ts';
import type { RecordRef } from './apply.ts';
import type { RepositorySpec } from './compose.ts';

/**
 * The repositories' cutover specs (compose.ts). A record file is named as the
 * transfer kind reading it names it (src/transfer/kinds/<kind>/): the JSON
 * store writes the seed apps' layout, which is what the importer reads.
 *
 * Adding a repository: its spec here — the write methods and the files they
 * change, the reads to compare — and its place in index.ts.
 */

/** Files are named only from valid ids (a call with an invalid one fails its validation and changes nothing). */
const conversationFile = (userId: string, id: string | undefined): RecordRef[] =>
  isValidUserId(userId) && isValidRecordId(id) ? [{ kind: 'conversations', rel: `conversations/${userId}/${id}.json` }] : [];
const usageFile = (userId: string): RecordRef[] => (isValidUserId(userId) ? [{ kind: 'usage', rel: `usage/${userId}/usage.json` }] : []);

const summary = (c: ConversationSummary) => ({ id: c.id, title: c.title, messageCount: c.messageCount });
const message = (m: Message) =>
  m.role === 'user' ? { role: m.role, position: m.position, content: m.content } : { role: m.role, position: m.position, stage3: m.stage3 };

export const conversationsSpec: RepositorySpec<ConversationRepository> = {
  name: 'conversations',
  writes: {
    create: ([userId, input]) => conversationFile(userId, input?.id),
    addUserMessage: ([userId, id]) => conversationFile(userId, id),
    // The quota counter and the message change together.
    sendUserMessage: ([userId, id]) => [...conversationFile(userId, id), ...usageFile(userId)],
    addAssistantMessage: ([userId, id]) => conversationFile(userId, id),
    updateTitle: ([userId, id]) => conversationFile(userId, id),
    delete: ([userId, id]) => conversationFile(userId, id),
  },
  fillIds: {
    create: ([userId, input = {}]) => [userId, { ...input, id: input.id ?? newId() }],
  },
  reads: {
    get: (c) => ({ ...summary(c), messages: c.messages.map(message) }),
    list: (page) => page.items.map(summary),
    search: (items) => items.map(summary),
  },
};

const counters = (u: UsageStatus) => ({ tier: u.tier, daily: u.daily.used, monthly: u.monthly.used, total: u.totalQueries });

export const usageSpec: RepositorySpec<UsageRepository> = {
  name: 'usage',
  writes: {
    consume: ([userId]) => usageFile(userId),
    setTier: ([userId]) => usageFile(userId),
  },
  reads: { get: counters },
};

// ---- seed 002: the forms app (submissions/<id>.json, jobs/<id>.json; transfer kinds submissions and jobs) ----

const submissionFile = (id: unknown): RecordRef[] => (isValidRecordId(id) ? [{ kind: 'submissions', rel: `submissions/${id}.json` }] : []);
const jobFile = (id: unknown): RecordRef[] => (isValidRecordId(id) ? [{ kind: 'jobs', rel: `jobs/${id}.json` }] : []);

const submissionView = (s: Submission) => ({ id: s.id, userId: s.userId, module: s.module, status: s.status, formData: s.formData });
const jobView = (j: Job) => ({ id: j.id, submissionId: j.submissionId, state: j.state, progress: j.progress, results: j.results });
const fileView = (f: UploadedFile) => ({ field: f.field, url: f.url, fileType: f.fileType, fileSize: f.fileSize, isCloud: f.isCloud });

/**
 * Submissions. A delete also removes the submission's jobs (their files on
 * JSON; PostgreSQL's cascade takes the rows), so their files are named too:
 * listed on the JSON side before the call, as the actor sees them.
 */
export function submissionsSpec(jsonJobs: JobRepository): RepositorySpec<SubmissionRepository> {
  return {
    name: 'submissions',
    writes: {
      create: ([, input]) => submissionFile(input?.id),
      updateStatus: ([, id]) => submissionFile(id),
      delete: async ([actor, id]) => {
        const jobs = await jsonJobs.listBySubmission(actor, id).catch(() => []);
        return [...submissionFile(id), ...jobs.flatMap((job) => jobFile(job.id))];
      },
    },
    fillIds: {
      create: ([actor, input]) => [actor, { ...input, id: input?.id ?? newSubmissionId() }],
    },
    // PostgreSQL keeps timestamps at its own precision (the file's updatedAt is rounded to the second on load).
    readBack: {
      create: ([actor], submission, postgres) => postgres.get(actor, submission.id),
      updateStatus: ([actor], submission, postgres) => postgres.get(actor, submission.id),
    },
    reads: {
      get: submissionView,
      list: (page) => page.items.map(submissionView),
    },
  };
}

/**
 * Jobs. A job's id is minted inside the core, so `create` names its file from
 * the answer. The retention purge removes jobs it does not name: every job
 * file is named (read before the purge, mirrored after it: the ones left are
 * unchanged and cost a hash each). A purge is a daily task, not a request.
 */
export function jobsSpec(dataDir: string): RepositorySpec<JobRepository> {
  return {
    name: 'jobs',
    writes: {
      create: () => [],
      start: ([, id]) => jobFile(id),
      progress: ([, id]) => jobFile(id),
      finish: ([, id]) => jobFile(id),
      fail: ([, id]) => jobFile(id),
      purgeFinished: async () => {
        const names = await readdir(path.join(dataDir, 'jobs')).catch(() => [] as string[]);
        return names.filter((name) => name.endsWith('.json')).flatMap((name) => jobFile(name.slice(0, -'.json'.length)));
      },
    },
    writtenBy: { create: (_args, job) => jobFile(job.id) },
    // The jobs kind has no updatedAt in the file: PostgreSQL's is the time of the load.
    readBack: {
      create: ([actor], job, postgres) => postgres.get(actor, job.id),
      start: ([actor], job, postgres) => postgres.get(actor, job.id),
      progress: ([actor], job, postgres) => postgres.get(actor, job.id),
      finish: ([actor], job, postgres) => postgres.get(actor, job.id),
      fail: ([actor], job, postgres) => postgres.get(actor, job.id),
    },
    reads: {
      get: jobView,
      listBySubmission: (jobs) => jobs.map(jobView),
    },
  };
}

/** Uploaded files live inside their submission's document on JSON: a write changes the submission's file. */
export const uploadedFilesSpec: RepositorySpec<UploadedFileRepository> = {
  name: 'uploadedFiles',
  writes: { add: ([, submissionId]) => submissionFile(submissionId) },
  reads: { list: (files) => files.map(fileView) },
};
