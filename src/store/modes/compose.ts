import type { RepositoryName, StorageMode } from '../../config.ts';
import { isPgFerryError } from '../../errors.ts';
import type { RecordRef } from './apply.ts';
import type { Mirror } from './mirror.ts';
import type { ShadowReads } from './shadow.ts';

// biome-ignore lint/suspicious/noExplicitAny: a repository's methods have any shape; the spec names them.
type AnyMethod = (...args: any[]) => Promise<any>;

/**
 * What the cutover needs to know about one repository — all of it, so a new
 * repository joins the modes with one spec (specs.ts):
 *
 * - `writes`: each method that changes records, and which record files a call
 *   changes, from its arguments alone (ids already validated; an invalid one
 *   names no file). The mirror copies those files to PostgreSQL through the
 *   importer's kind code (apply.ts). Naming them before the call lets the
 *   journal take them BEFORE the JSON write while PostgreSQL is down, so a
 *   crash between the two cannot leave a write that neither store's copy of
 *   the journal knows about.
 *   It may be async (e.g. a submission's delete also removes its jobs, listed
 *   first).
 * - `fillIds`: for a method whose record id is minted by the call (create),
 *   arguments with the id chosen up front, so `writes` can name its file.
 * - `writtenBy`: files known only from the answer (a job's id is minted inside
 *   the core): mirrored after the JSON write like the others, but, unlike
 *   them, not journaled ahead while PostgreSQL is behind.
 * - `readBack`: postgres-fallback answers from PostgreSQL; for a write whose
 *   answer carries what PostgreSQL sets itself on load (a job's updatedAt),
 *   the read that returns the record as PostgreSQL now has it.
 * - `reads`: each method shadow reads compare, and the projection both stores
 *   must agree on (ids, contents, counters; not formatting such as timestamp
 *   precision).
 *
 * Methods named in neither pass through to the answering store.
 */
export interface RepositorySpec<R> {
  readonly name: RepositoryName;
  readonly writes: {
    readonly [M in keyof R]?: R[M] extends AnyMethod ? (args: Parameters<R[M]>) => RecordRef[] | Promise<RecordRef[]> : never;
  };
  readonly writtenBy?: {
    readonly [M in keyof R]?: R[M] extends AnyMethod ? (args: Parameters<R[M]>, answer: Awaited<ReturnType<R[M]>>) => RecordRef[] : never;
  };
  readonly fillIds?: { readonly [M in keyof R]?: R[M] extends AnyMethod ? (args: Parameters<R[M]>) => Parameters<R[M]> : never };
  readonly readBack?: {
    readonly [M in keyof R]?: R[M] extends AnyMethod
      ? (args: Parameters<R[M]>, answer: Awaited<ReturnType<R[M]>>, postgres: R) => ReturnType<R[M]>
      : never;
  };
  readonly reads: { readonly [M in keyof R]?: R[M] extends AnyMethod ? (answer: Awaited<ReturnType<R[M]>>) => unknown : never };
}

export interface ComposeParts<R> {
  json: R;
  postgres: R;
  mirror: Mirror;
  shadow: ShadowReads;
}

/**
 * One repository in a cutover mode, composed from its JSON and PostgreSQL
 * implementations (DESIGN section 5; seed 002 "Gradual Migration"):
 *
 * - `dual` (phase 1): JSON answers every call. After a write, the records it
 *   changed are copied to PostgreSQL — or journaled when PostgreSQL fails, so
 *   the caller never sees PostgreSQL's failure. Sampled reads also run on
 *   PostgreSQL and are compared.
 * - `postgres-fallback` (phase 3): PostgreSQL answers reads; a record it does
 *   not have yet (NOT_FOUND) is read from JSON. A write runs on the JSON
 *   record (which keeps the app's files, ids and timestamps, so a rollback to
 *   `dual` or `json` loses nothing) and is then copied to PostgreSQL before
 *   the call returns; when PostgreSQL refuses it the caller gets UNAVAILABLE
 *   and the change is journaled, so PostgreSQL still converges on the files.
 */
export function composeRepository<R extends object>(spec: RepositorySpec<R>, mode: StorageMode, parts: ComposeParts<R>): R {
  if (mode !== 'dual' && mode !== 'postgres-fallback') throw new Error(`composeRepository: ${mode} is not a cutover mode`);
  const json = parts.json as Record<string, AnyMethod>;
  const postgres = parts.postgres as Record<string, AnyMethod>;
  const writes = spec.writes as Record<string, ((args: unknown[]) => RecordRef[] | Promise<RecordRef[]>) | undefined>;
  const writtenBy = (spec.writtenBy ?? {}) as Record<string, ((args: unknown[], answer: unknown) => RecordRef[]) | undefined>;
  const fillIds = (spec.fillIds ?? {}) as Record<string, ((args: unknown[]) => unknown[]) | undefined>;
  const readBack = (spec.readBack ?? {}) as Record<
    string,
    ((args: unknown[], answer: unknown, postgres: R) => Promise<unknown>) | undefined
  >;
  const reads = spec.reads as Record<string, ((answer: unknown) => unknown) | undefined>;
  const composed: Record<string, AnyMethod> = {};
  for (const method of Object.keys(json)) {
    if (typeof json[method] !== 'function') continue;
    const changedBy = writes[method];
    const project = reads[method];
    if (changedBy) composed[method] = write(method, changedBy);
    else composed[method] = mode === 'dual' ? readDual(method, project) : readFallback(method, project);
  }
  return composed as R;

  function write(method: string, changedBy: (args: unknown[]) => RecordRef[] | Promise<RecordRef[]>): AnyMethod {
    return async (...given) => {
      const args = fillIds[method]?.(given) ?? given;
      const refs = [...(await changedBy(args))];
      // PostgreSQL is down or behind: journal first, so a crash during the write loses nothing. A replay
      // may copy the file before this write lands, so the write is mirrored (or journaled) again after it.
      if (mode === 'dual' && parts.mirror.behind) await parts.mirror.journalAhead(refs);
      const answer = await json[method]!(...args);
      refs.push(...(writtenBy[method]?.(args, answer) ?? []));
      if (mode === 'dual') await parts.mirror.changed(refs);
      else {
        await parts.mirror.required(refs);
        const again = readBack[method];
        if (again) return again(args, answer, parts.postgres);
      }
      return answer;
    };
  }

  function readDual(method: string, project: ((answer: unknown) => unknown) | undefined): AnyMethod {
    return async (...args) => {
      const answer = await json[method]!(...args);
      if (project && parts.shadow.sample()) parts.shadow.compare(spec.name, method, answer, () => postgres[method]!(...args), project);
      return answer;
    };
  }

  function readFallback(method: string, project: ((answer: unknown) => unknown) | undefined): AnyMethod {
    return async (...args) => {
      let answer: unknown;
      try {
        answer = await postgres[method]!(...args);
      } catch (error) {
        // Not backfilled yet: the JSON files still have it.
        if (isPgFerryError(error) && error.code === 'NOT_FOUND') return json[method]!(...args);
        throw error;
      }
      if (project && parts.shadow.sample()) parts.shadow.compare(spec.name, method, answer, () => json[method]!(...args), project);
      return answer;
    };
  }
}
