import type {
  AuditEntry,
  AuditFilter,
  AuditInput,
  Job,
  JobChange,
  NewUploadedFile,
  Submission,
  SubmissionFilter,
  SubmissionStatus,
  UploadedFile,
} from '../../domain/forms.ts';
import type { ListKey } from './cursors.ts';

/**
 * What a backend implements for seed 002's repositories: storage primitives
 * only (see backend.ts). The core (store/core/forms.ts) validates, checks
 * who may see what, runs the job state machine's rules and builds the audit
 * entries; a backend stores, fetches and — when it holds the audit log too —
 * writes the `audit` entry it is handed in the same transaction (PostgreSQL)
 * or critical section (JSON). `audit: null` means "another backend records it".
 */

/** Whose rows a call may touch: one user's, or every row (admin). */
export interface Visibility {
  userId: string;
  all: boolean;
}

/** A validated submission to store: the backend stamps createdAt and updatedAt. */
export type NewSubmissionRow = Omit<Submission, 'createdAt' | 'updatedAt'>;

/** A submission as list() sees it: with the microsecond keyset of createdAt. */
export interface ListedSubmission extends Submission {
  createdKey: string;
}

export interface SubmissionBackend {
  /** Undefined when the id is taken. */
  insert(row: NewSubmissionRow, audit: AuditInput | null): Promise<Submission | undefined>;
  read(who: Visibility, id: string): Promise<Submission | undefined>;
  /** Newest-created first, strictly after `after` (compareListKeys on createdKey, id). */
  listAfter(who: Visibility, filter: SubmissionFilter, after: ListKey | null, count: number): Promise<ListedSubmission[]>;
  setStatus(who: Visibility, id: string, status: SubmissionStatus, audit: AuditInput | null): Promise<Submission | undefined>;
  /** Removes the submission, and its jobs and files when this backend holds them; false when not visible. */
  remove(who: Visibility, id: string, audit: AuditInput | null): Promise<boolean>;
}

export interface NewJobRow {
  id: string;
  submissionId: string;
  meta: Record<string, unknown>;
}

export interface TransitionOutcome {
  before: Job;
  after: Job;
}

export interface JobBackend {
  /** Undefined when the id is taken. */
  insert(row: NewJobRow, audit: AuditInput | null): Promise<Job | undefined>;
  read(id: string): Promise<Job | undefined>;
  /**
   * One atomic step (row lock / file lock): read the job, ask `decide` for
   * the change (it throws CONFLICT for an illegal transition: nothing is
   * written), write it and, when `auditOf` is given, its audit entry.
   */
  transition(
    id: string,
    decide: (current: Job) => JobChange,
    auditOf: ((outcome: TransitionOutcome) => AuditInput) | null,
  ): Promise<TransitionOutcome | undefined>;
  /** Oldest first. */
  listBySubmission(submissionId: string): Promise<Job[]>;
  /** Jobs of a submission deleted on another backend (hybrid mode). */
  removeBySubmission(submissionId: string): Promise<number>;
  /** Remove done/failed jobs completed (or, without completedAt, created) before `before`; never a started or running one. */
  purgeFinished(before: Date, audit: ((count: number) => AuditInput) | null): Promise<number>;
}

export interface FileBackend {
  /** Undefined when the submission does not exist. */
  insert(submissionId: string, file: Required<NewUploadedFile>, audit: AuditInput | null): Promise<UploadedFile | undefined>;
  list(submissionId: string): Promise<UploadedFile[]>;
}

export interface ListedAudit extends AuditEntry {
  createdKey: string;
}

export interface AuditBackend {
  append(entry: AuditInput): Promise<AuditEntry>;
  /** Newest first, strictly after `after`. */
  listAfter(filter: AuditFilter, after: ListKey | null, count: number): Promise<ListedAudit[]>;
}

/** The four backends the forms repositories run on; any of them may be JSON or PostgreSQL (hybrid mode). */
export interface FormsBackends {
  submissions: SubmissionBackend & { readonly kind: string };
  jobs: JobBackend & { readonly kind: string };
  files: FileBackend & { readonly kind: string };
  audit: AuditBackend & { readonly kind: string };
}
