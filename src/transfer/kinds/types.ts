import type postgres from 'postgres';
import type { TierLimits } from '../../config.ts';
import type { Database, Sql, TransactionSql } from '../../db/database.ts';
import type { LoadMethod } from '../load.ts';
import type { SourceFile, SourceProblem } from '../source.ts';

/**
 * What the transfer engine knows about a record kind: everything kind-specific
 * that import and verify do goes through a KindDescriptor, and the engine
 * (scan → read → validate → load in batches, progress, import_log, verify,
 * summaries) never names a kind. A kind is one folder, `kinds/<name>/`, whose
 * index.ts exports its descriptor, plus one line in kinds/index.ts.
 *
 * A kind's records are JSON files below one or more top-level folders of the
 * source root, one record per file; the record's key (its primary key in the
 * kind's table, and import_log.record_key) is read off the file's path.
 * The engine reads and parses the files (strict UTF-8, the tolerant JSON of
 * validate.ts's parseDocument) and hands the kind the parsed document.
 */
export interface KindDescriptor<R extends KindRecord = KindRecord> {
  /** The kind's name: `--only` takes it, summaries label their row with it. Lower case, no commas. */
  readonly name: string;
  /** import_log.kind for its records (and the `kind` of report lines): kept stable once data was imported. */
  readonly logKind: string;
  /** What a key is called in messages, e.g. "conversation id" (two files with the same key: neither imported). */
  readonly keyLabel: string;
  /**
   * Top-level folders of the source root this kind reads. A --from directory
   * with any registered kind's folder is accepted; a backup archives the
   * selected kinds' folders.
   */
  readonly folders: readonly string[];
  /**
   * URL of the module that exports this descriptor (its `import.meta.url`).
   * Reader threads and the CLI's engine thread import it from there, so a
   * kind registered at run time works on every thread.
   */
  readonly module: string;

  /**
   * List the kind's files below its folders with the walk helpers (which
   * follow symlinks only inside the root and record unreadable entries).
   * No file is opened: paths and sizes only.
   */
  scan(walk: KindScan): Promise<void>;
  /** The key a file's path names, valid or not (duplicates are found on it). */
  fileKey(file: SourceFile): string;
  /** Whether a key read off a path is a valid key (a file that cannot be parsed still accounts for a valid one). */
  isValidKey(key: string): boolean;
  /**
   * Whether two files naming the same key are different records (e.g. two
   * users' folders holding the same conversation id): then the first copy in
   * path order keeps the key and each other copy is imported under a key
   * derived from its path (records.ts duplicateReasons), with a warning naming
   * the mapping. Otherwise neither copy is imported.
   */
  readonly keepsDuplicates?: boolean;

  /**
   * Validate a parsed document and prepare its record: canonical hash
   * computed, and (when `context.encode` is set) the data encoded for that
   * load method. Runs on reader threads: the result must be plain data
   * (structured-cloneable). Problems that do not stop the record are warnings.
   */
  prepare(input: PrepareInput, context: PrepareContext): Prepared<R>;
  /**
   * Rows a record brings besides its own (a conversation's messages): summed
   * into the summaries' "messages" figure. Default: none.
   */
  childRows?(record: R): number;

  load: {
    /** The kind's table and its key column: the engine checks which keys have a row (a logged hash only counts if the row is there). */
    readonly table: string;
    readonly keyColumn: string;
    /**
     * Write the changed records of one batch, inside the batch's transaction
     * (import_log is the engine's). `replaced` are the keys that already
     * have a row.
     */
    write(tx: TransactionSql, changed: readonly R[], context: WriteContext): Promise<void>;
    /** Delete the records with these keys (their source files are gone; --prune), inside the engine's transaction. */
    prune(tx: TransactionSql, keys: readonly string[]): Promise<void>;
  };

  /**
   * After every batch of the run is committed (not on a dry run): fix links
   * between records that may have arrived in any order, and return the
   * warnings that span records — for the records this run wrote (import_log
   * rows written since `since`), so an unchanged re-run reports nothing new. Optional.
   */
  afterLoad?(db: Database, context: { root: string; since: Date }): Promise<CrossCheck[]>;

  verify: {
    /**
     * Compare one batch of source records with the database rows, and call
     * `context.matched/missing/different` once per item. The database side
     * is hashed from the rows themselves, never taken from import_log.
     */
    compare(items: readonly VerifyItem<R>[], context: VerifyContext): Promise<void>;
    /** Every key the kind's table holds, as `{ key }` rows (streamed with a cursor to find records with no source). */
    databaseKeys(sql: Sql): KeyQuery;
  };
}

/** A prepared record as the engine carries it from the readers to the loader or verifier. */
export interface KindRecord {
  /** Primary key in the kind's table; import_log.record_key. */
  key: string;
  /** Source path relative to the root (import_log.source). */
  file: string;
  /** Canonical content hash (import_log.content_hash; what verify compares). */
  hash: string;
  /**
   * When the source file was read (transfer/version.ts): the load writes the
   * record only when no newer version of it was written (import_log.source_version).
   * Set by the engine, not by the kind; absent: written unconditionally.
   */
  version?: number;
  /**
   * Encoded load data, if the kind encodes at read time. A Buffer of up to
   * BufferPool.CHUNK (1 MiB) may be a view of a scratch buffer: the engine
   * copies it (into the batch's pooled chunks, or before sending it across
   * threads) before the next record is read. A larger Buffer must be the
   * record's own: the engine keeps it as it is (a copy would double a large
   * conversation's weight).
   */
  payload?: Buffer | string;
}

/** Settings from the command line that a kind may read while preparing. */
export interface ReadSettings {
  /** Owner of records whose layout names none (the chat app's single-user layout). */
  defaultUser?: string;
  /** The source root (a kind may read a sibling folder, e.g. a submission's job for its module). */
  sourceRoot?: string;
  /** The forms app's options (--source-timezone, --module, --inline-warn-size). */
  forms?: FormsSettings;
}

/** The forms app's import options (kinds/submissions, kinds/jobs). */
export interface FormsSettings {
  /** IANA zone of the server's naive local times (default UTC). */
  sourceTimezone?: string;
  /** Module of a submission nothing else names. */
  module?: string;
  /** An inline base64 data URL over this many bytes is noted (kept all the same). */
  inlineWarnBytes?: number;
}

/** A problem found after loading, across records (a job whose submission is not there): reported as a warning. */
export interface CrossCheck {
  key: string | null;
  file: string;
  reason: string;
}

/** …and while loading. */
export interface LoadSettings extends ReadSettings {
  tierLimits: TierLimits;
}

export interface PrepareInput {
  file: SourceFile;
  /** The parsed JSON document. */
  document: unknown;
  /** The file's modification time (a record may default a timestamp to it). */
  mtimeMs: number;
  /** Import under this key instead of the one the path names (a kept duplicate; see `keepsDuplicates`). */
  key?: string;
}

export interface PrepareContext {
  settings: ReadSettings;
  /** Encode for this load method; null: hash only (verify). */
  encode: LoadMethod | null;
}

export type Prepared<R> =
  | { ok: true; record: R; warnings: string[] }
  | { ok: false; key: string | null; reason: string; warnings: string[] };

export interface WriteContext {
  method: LoadMethod;
  /** Keys of the changed records that already have a row. */
  replaced: readonly string[];
  settings: LoadSettings;
}

export interface VerifyItem<R> {
  record: R;
  /** The source file (to read it again and name the first difference). */
  source: SourceFile;
}

export interface VerifyContext {
  db: Database;
  root: string;
  settings: ReadSettings;
  matched(item: VerifyItem<KindRecord>): void;
  missing(item: VerifyItem<KindRecord>): void;
  /** `reason` names the first thing that differs. */
  different(item: VerifyItem<KindRecord>, reason: string): void;
}

/** A query whose rows are `{ key }`, read with a cursor. */
export type KeyQuery = postgres.PendingQuery<Array<{ key: string }>>;

/** The walk helpers a kind's scan uses; every entry is relative to the source root. */
export interface KindScan {
  readonly root: string;
  /** A top-level folder's entries (none when it does not exist). */
  folder(name: string): Promise<WalkEntry[]>;
  /** A directory's entries. */
  list(dir: WalkEntry): Promise<WalkEntry[]>;
  /** A record file. */
  add(entry: WalkEntry): void;
  /** An entry that is not a record and is not worth a report (editor backups, temp files): counted only. */
  ignore(): void;
  /** Report an entry; an error also counts as a record that could not be read. */
  problem(problem: Omit<SourceProblem, 'kind'>): void;
  /** This kind's problems so far (the walk's included), for a kind to correct the keys they name. */
  readonly problems: readonly SourceProblem[];
}

export interface WalkEntry {
  name: string;
  abs: string;
  /** Relative to the root, with forward slashes. */
  rel: string;
  type: 'file' | 'dir' | 'other';
  size: number;
}
