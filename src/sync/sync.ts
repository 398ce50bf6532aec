import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type FSWatcher, watch } from 'chokidar';
import type { TierLimits } from '../config.ts';
import type { Database } from '../db/database.ts';
import { PgFerryError } from '../errors.ts';
import { type Logger, silentLogger } from '../log.ts';
import { runImport } from '../transfer/import.ts';
import { selectKinds } from '../transfer/kinds/index.ts';
import type { KindDescriptor } from '../transfer/kinds/types.ts';
import type { TransferLimits } from '../transfer/limits.ts';
import { Loader } from '../transfer/load.ts';
import { derivedKey } from '../transfer/records.ts';
import { ProblemReport } from '../transfer/report.ts';
import { isIgnorable, scanSource } from '../transfer/source.ts';
import { IMPORT_LOCK_KEY } from '../transfer/target.ts';
import { type FileStamp, readStable } from './stable-read.ts';
import { type KnownFile, loadKnownFiles, type SyncStateRow, saveStamps, writeSyncState } from './state.ts';

/**
 * `pgferry sync`: keep PostgreSQL up to date with a JSON tree another program
 * (in any language) keeps writing — the dual-write phase with no change to the app.
 *
 *   events (chokidar) ─┐
 *   rescan (every N s) ─┼─> dirty paths ─> stable read ─> staged copy ─> import engine ─> import_log (+ stamps)
 *   restart (import_log)┘                  (retry while busy)           (one batch = one runImport)
 *
 * Every changed file goes through the same engine as `pgferry import`
 * (validation, content hash, one transaction per batch, import_log), so what
 * sync loads verifies exactly as an import would. The engine reads the staged
 * copy, i.e. the exact bytes the stable read checked: a file rewritten after
 * that check can never be loaded torn; its write is another event.
 *
 * Deleted files: their records are deleted (as `import --prune` does).
 * Restart: the stamps saved in import_log say which files changed while sync
 * was not running; only those are read.
 */

export interface SyncOptions {
  /** The source root, already resolved (resolveSourceRoot). */
  root: string;
  db: Database;
  kinds?: readonly string[];
  defaultUser?: string;
  tierLimits: TierLimits;
  limits?: TransferLimits;
  /** Keep watching after the first pass (until `signal`). */
  follow: boolean;
  /** Full rescan every this many ms while following: the safety net for missed events (default 30 s). */
  rescanMs?: number;
  /** A file untouched this long is "quiet" (default 50 ms; longer than the kernel's mtime tick). */
  quietMs?: number;
  /** An unparseable file untouched this long is broken, and rejected (default 2 s). */
  giveUpMs?: number;
  /** Longest wait for a file to be quiet: a file rewritten non-stop is loaded anyway and checked again (default 500 ms). */
  maxWaitMs?: number;
  /** Files per engine batch (default 500). */
  batchSize?: number;
  /** sync_state and the lag log line, every this many ms (default 5 s). */
  reportMs?: number;
  /** Refuse a first pass that would delete more than this share of the known records (default 0.5): probably the wrong --from. */
  maxDeleteShare?: number;
  keepDeleted?: boolean;
  logger?: Logger;
  signal?: AbortSignal;
  /** Called each time sync_state is written (every reportMs and at stop): the CLI records it as the run's progress. */
  onReport?: (state: SyncStateRow) => void;
  /** Called for each committed change, with its lag (tests and bench/sync.ts). */
  onCommit?: (change: { rel: string; lagMs: number; deleted: boolean }) => void;
}

export interface SyncSummary {
  imported: number;
  unchanged: number;
  deleted: number;
  errors: number;
  lagP50Ms: number | null;
  lagP99Ms: number | null;
  problems: ProblemReport;
}

interface Dirty {
  /** When this path was first seen changed (lag of a deletion is measured from here). */
  since: number;
  /** Not before this time (ms epoch). */
  due: number;
  attempts: number;
  /** Seen by a filesystem event (a live write), not by a scan (the backfill): loaded first. */
  live: boolean;
}

/** Backfill paths per batch while live writes are waiting: the app's writes are not queued behind the history. */
const BACKFILL_BESIDE_LIVE = 50;

interface Staged {
  rel: string;
  kind: KindDescriptor;
  stamp: FileStamp;
  mtimeMs: number;
  /** Read while the file was still being written to: checked again after it goes quiet. */
  recheck: boolean;
}

const LAG_WINDOW = 1000;

export class Sync {
  private readonly options: SyncOptions;
  private readonly logger: Logger;
  private readonly kinds: KindDescriptor[];
  private readonly folders: Set<string>;
  private readonly dirty = new Map<string, Dirty>();
  /** Present files by the key their path names (kind + key): more than one is a duplicated key. */
  private readonly groups = new Map<string, Set<string>>();
  private known = new Map<string, KnownFile>();
  private readonly lags: number[] = [];
  private readonly startedAt = new Date();
  private readonly problems = new ProblemReport(undefined, { keep: 50 });
  private readonly counts = { imported: 0, unchanged: 0, deleted: 0, errors: 0 };
  private lastError: string | null = null;
  private lastEventAt: Date | null = null;
  private lastScanAt: Date | null = null;
  private lastImportAt: Date | null = null;
  private lastLag: number | null = null;
  private watcher: FSWatcher | undefined;
  private stagingRoot = '';
  private batchNo = 0;
  private wake: (() => void) | undefined;
  private lastReportAt = 0;

  constructor(options: SyncOptions) {
    this.options = options;
    this.logger = options.logger ?? silentLogger;
    this.kinds = selectKinds(options.kinds);
    this.folders = new Set(this.kinds.flatMap((k) => k.folders));
  }

  private get quietMs() {
    return this.options.quietMs ?? 50;
  }

  /** Run the first pass, then (with `follow`) keep following until the signal; always ends with sync_state written. */
  async run(): Promise<SyncSummary> {
    const signal = this.options.signal;
    this.stagingRoot = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-sync-'));
    try {
      this.known = await loadKnownFiles(this.options.db, this.kinds);
      // Watch first, then scan: a write between the two is seen by one or the other.
      if (this.options.follow) await this.startWatcher();
      await this.rescan(true);
      this.logger.info({ root: this.options.root, known: this.known.size, changed: this.dirty.size }, 'sync: first pass');
      let nextScan = Date.now() + (this.options.rescanMs ?? 30_000);
      while (!signal?.aborted) {
        await this.processDue();
        await this.maybeReport();
        if (!this.options.follow && this.dirty.size === 0) break;
        if (this.options.follow && Date.now() >= nextScan) {
          await this.rescan(false);
          nextScan = Date.now() + (this.options.rescanMs ?? 30_000);
        }
        await this.sleepUntilDue(this.options.follow ? nextScan : Number.POSITIVE_INFINITY);
      }
    } finally {
      await this.watcher?.close();
      await fs.rm(this.stagingRoot, { recursive: true, force: true });
      await this.report(true).catch((error: unknown) => this.logger.warn({ err: error }, 'sync: could not write sync_state'));
    }
    return { ...this.counts, ...this.percentiles(), problems: this.problems };
  }

  // -- change detection --------------------------------------------------------

  private async startWatcher(): Promise<void> {
    const root = this.options.root;
    this.watcher = watch(root, {
      ignoreInitial: true,
      followSymlinks: false,
      // What a kind may hold: conversations/<user>/<id>.json is three levels below the root.
      depth: 3,
      ignored: (p) => p !== root && isIgnorable(path.basename(p)),
    });
    const onPath = (abs: string) => {
      const rel = path.relative(root, abs).split(path.sep).join('/');
      if (!rel.endsWith('.json') || !this.folders.has(rel.split('/')[0]!)) return;
      this.lastEventAt = new Date();
      this.groupAdd(rel);
      this.markDirty(rel, 10, true);
    };
    this.watcher.on('add', onPath).on('change', onPath).on('unlink', onPath);
    this.watcher.on('error', (error) => {
      this.noteError(`file watcher: ${(error as Error).message}`);
    });
    await new Promise<void>((resolve) => this.watcher!.once('ready', () => resolve()));
  }

  private markDirty(rel: string, delayMs: number, live = false): void {
    const now = Date.now();
    const entry = this.dirty.get(rel);
    if (!entry) this.dirty.set(rel, { since: now, due: now + delayMs, attempts: 0, live });
    else if (live) entry.live = true;
    this.wake?.();
  }

  /**
   * Every file whose stamp differs from the one loaded, and every loaded file
   * that is gone. The first pass also guards against a wrong --from: a tree
   * missing most of what was loaded from it is refused, not emptied.
   */
  private async rescan(first: boolean): Promise<void> {
    const scan = await scanSource(this.options.root, this.kinds);
    const present = new Set<string>();
    this.groups.clear();
    for (const file of scan.files) {
      present.add(file.rel);
      this.groupAdd(file.rel);
      const known = this.known.get(file.rel);
      const stamp = await fs.stat(path.join(this.options.root, file.rel), { bigint: true }).catch(() => null);
      if (stamp === null) continue;
      if (known?.mtimeNs === stamp.mtimeNs && known.size === Number(stamp.size)) continue;
      this.markDirty(file.rel, 0);
    }
    for (const problem of scan.problems) present.add(problem.rel);
    const missing = [...this.known.keys()].filter((rel) => !present.has(rel));
    if (first && !this.options.keepDeleted && missing.length > 10) {
      const share = missing.length / this.known.size;
      if (share > (this.options.maxDeleteShare ?? 0.5))
        throw new PgFerryError(
          'CONFIG_ERROR',
          `--from ${this.options.root} lacks ${missing.length} of the ${this.known.size} files loaded earlier: ` +
            'sync would delete their records. Check --from; pass --keep-deleted to sync without deleting.',
        );
    }
    for (const rel of missing) this.markDirty(rel, 0);
    this.lastScanAt = new Date();
  }

  // -- processing ----------------------------------------------------------

  private async sleepUntilDue(limit: number): Promise<void> {
    // A loop, not Math.min(...spread): a first pass may hold more paths than a call takes arguments.
    let until = Math.min(limit, this.lastReportAt + (this.options.reportMs ?? 5000));
    for (const entry of this.dirty.values()) if (entry.due < until) until = entry.due;
    const ms = Math.max(0, Math.min(until - Date.now(), 1000));
    if (ms === 0 && this.dirty.size > 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      const signal = this.options.signal;
      function done() {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      }
      this.wake = done;
      signal?.addEventListener('abort', done, { once: true });
    });
    this.wake = undefined;
  }

  /**
   * Read the due paths, stage the complete ones, load them as one batch, apply
   * deletions. Files naming the same key (two users' conversations with one
   * id) are staged together, every copy, so the engine gives each the key a
   * full import would (records.ts duplicateReasons): the first copy in path
   * order keeps it, the others get a key derived from their path.
   */
  private async processDue(): Promise<void> {
    const now = Date.now();
    const batchSize = this.options.batchSize ?? 500;
    const ready = [...this.dirty.entries()].filter(([, d]) => d.due <= now);
    const live = ready.filter(([, d]) => d.live).slice(0, batchSize);
    const backfill = ready.filter(([, d]) => !d.live).slice(0, live.length > 0 ? BACKFILL_BESIDE_LIVE : batchSize);
    const due = [...live, ...backfill];
    if (due.length === 0) return;
    const batchDir = path.join(this.stagingRoot, `b${++this.batchNo}`);
    const staged = new Map<string, { bytes: Buffer; staged: Staged }>();
    const gone = new Map<string, number>();
    const retry = (rel: string, entry: Dirty) => {
      const attempts = entry.attempts + 1;
      this.dirty.set(rel, { ...entry, attempts, due: Date.now() + Math.min(10 * 2 ** attempts, 250) });
    };
    for (const [rel, entry] of due) {
      this.dirty.delete(rel);
      const outcome = await this.readOne(rel, entry, false);
      if (outcome === 'retry') retry(rel, entry);
      else if (outcome === 'gone') {
        gone.set(rel, entry.since);
        this.groupRemove(rel);
      } else if (outcome !== 'skip') staged.set(rel, outcome);
    }
    // Complete the groups of duplicated keys touched by this batch; a copy still being written puts the group off.
    for (const rel of [...staged.keys(), ...gone.keys()]) {
      const members = this.groupOf(rel);
      if (members.length < 2 && !gone.has(rel)) continue;
      let busy = false;
      for (const member of members) {
        if (staged.has(member)) continue;
        const outcome = await this.readOne(member, { since: now, due: now, attempts: 0, live: false }, true);
        if (outcome === 'retry') busy = true;
        else if (outcome === 'gone') {
          gone.set(member, now);
          this.groupRemove(member);
        } else if (outcome !== 'skip') staged.set(member, outcome);
      }
      if (busy)
        for (const member of members) {
          if (!staged.delete(member)) continue;
          this.markDirty(member, 50);
        }
    }
    try {
      for (const { bytes, staged: s } of staged.values()) await stageCopy(batchDir, s.rel, bytes, s.mtimeMs);
      const list = [...staged.values()].map((s) => s.staged);
      if (list.length > 0) await this.withImportLock(() => this.load(batchDir, list));
      if (gone.size > 0) await this.withImportLock(() => this.deleteGone([...gone].map(([rel, since]) => ({ rel, since }))));
    } catch (error) {
      // The database is away or refused the batch: keep every path dirty and try again shortly.
      this.noteError(`load failed, retrying: ${(error as Error).message}`);
      for (const rel of staged.keys()) this.markDirty(rel, 1000);
      for (const rel of gone.keys()) this.markDirty(rel, 1000);
      if (error instanceof PgFerryError && error.code === 'CONFIG_ERROR') throw error;
    } finally {
      await fs.rm(batchDir, { recursive: true, force: true });
    }
  }

  // -- keys --------------------------------------------------------------------

  private groupId(rel: string): string | null {
    const kind = this.kindOf(rel);
    return kind ? `${kind.name}\u0000${kind.fileKey({ kind: kind.name, rel, size: 0 })}` : null;
  }

  private groupAdd(rel: string): void {
    const id = this.groupId(rel);
    if (id === null) return;
    const members = this.groups.get(id) ?? new Set<string>();
    members.add(rel);
    this.groups.set(id, members);
  }

  private groupRemove(rel: string): void {
    const id = this.groupId(rel);
    const members = id === null ? undefined : this.groups.get(id);
    members?.delete(rel);
    if (members?.size === 0) this.groups.delete(id!);
  }

  /** The present files naming the same key as `rel` (itself included when present), in path order. */
  private groupOf(rel: string): string[] {
    const id = this.groupId(rel);
    return [...((id !== null && this.groups.get(id)) || [])].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** The key a full import gives this file now (records.ts duplicateReasons); null when it is not imported. */
  private expectedKey(rel: string): string | null {
    const kind = this.kindOf(rel)!;
    const key = kind.fileKey({ kind: kind.name, rel, size: 0 });
    if (!kind.isValidKey(key)) return null;
    const members = this.groupOf(rel);
    if (members.length < 2) return key;
    if (!kind.keepsDuplicates) return null;
    return members[0] === rel ? key : derivedKey(key, rel);
  }

  /** Whether some present file is imported under this key (then a deletion or a key change must not delete it). */
  private keyInUse(kind: KindDescriptor, key: string): boolean {
    // A derived key is `<key>-dup-<hash>`: its files are in the group of the key it derives from.
    const stems = new Set([key, key.includes('-dup-') ? key.slice(0, key.lastIndexOf('-dup-')) : key]);
    return [...stems].some((stem) =>
      [...(this.groups.get(`${kind.name}\u0000${stem}`) ?? [])].some((rel) => this.expectedKey(rel) === key),
    );
  }

  /** One path: `force` (a copy staged beside a changed one) reads it even when unchanged or still being written. */
  private async readOne(rel: string, entry: Dirty, force: boolean): Promise<'retry' | 'gone' | 'skip' | { bytes: Buffer; staged: Staged }> {
    const kind = this.kindOf(rel);
    if (!kind) return 'skip';
    const abs = path.join(this.options.root, rel);
    if (!(await insideRoot(this.options.root, abs))) return 'skip'; // a symlink leading out: the scan reports it
    const read = await readStable(abs, {
      quietMs: this.quietMs,
      waitingSinceMs: entry.since,
      giveUpMs: this.options.giveUpMs ?? 2000,
      maxDepth: this.options.limits?.maxDepth,
    });
    if (read.status === 'gone') return 'gone';
    if (read.status === 'busy') return 'retry';
    const known = this.known.get(rel);
    if (read.status === 'broken') {
      if (!force && known?.size === read.stamp.size && known.mtimeNs === read.stamp.mtimeNs) return 'skip'; // rejected already
      const mtimeMs = Number(read.stamp.mtimeNs / 1_000_000n);
      const bytes = await fs.readFile(abs).catch(() => Buffer.alloc(0));
      return { bytes, staged: { rel, kind, stamp: read.stamp, mtimeMs, recheck: false } };
    }
    // Still being written: wait for it to go quiet, but not forever (a file rewritten non-stop is loaded and checked again).
    const waited = Date.now() - entry.since;
    if (!force && !read.quiet && waited < (this.options.maxWaitMs ?? 500)) return 'retry';
    if (!force && read.quiet && known?.size === read.stamp.size && known.mtimeNs === read.stamp.mtimeNs) return 'skip';
    this.groupAdd(rel);
    return {
      bytes: read.bytes,
      staged: { rel, kind, stamp: read.stamp, mtimeMs: read.mtimeMs, recheck: !read.quiet },
    };
  }

  private kindOf(rel: string): KindDescriptor | undefined {
    const top = rel.split('/')[0]!;
    return this.kinds.find((k) => k.folders.includes(top));
  }

  /** One engine run over the staged copies: the same validation, hashing and transaction as `pgferry import`. */
  private async load(batchDir: string, staged: Staged[]): Promise<void> {
    const report = new ProblemReport(undefined, { keep: 20 });
    const summary = await runImport({
      root: batchDir,
      db: this.options.db,
      kinds: this.kinds.map((k) => k.name),
      defaultUser: this.options.defaultUser,
      tierLimits: this.options.tierLimits,
      limits: this.options.limits,
      readers: 0,
      jobs: 1,
      partial: true,
      report,
      logger: this.logger,
    });
    await saveStamps(this.options.db, staged);
    const committedAt = Date.now();
    // Files the engine rejected (broken for good: a torn one never gets this far) are the run's errors.
    this.counts.errors += report.errors;
    for (const line of report.first) {
      if (line.severity !== 'error') continue;
      this.problems.add(line);
      this.lastError = `${line.file}: ${line.reason}`;
      this.logger.warn({ file: line.file, reason: line.reason }, 'sync: file rejected');
    }
    for (const s of Object.values(summary.kinds)) {
      this.counts.imported += s.inserted + s.updated;
      this.counts.unchanged += s.unchanged;
    }
    const orphans = new Map<KindDescriptor, string[]>();
    for (const s of staged) {
      const key = this.expectedKey(s.rel);
      const previous = this.known.get(s.rel);
      const before = previous?.key ?? null;
      // Lag is the age of a change made while sync runs; a copy loaded again unchanged, or the backfill of old files, has none.
      const changed = previous?.size !== s.stamp.size || previous.mtimeNs !== s.stamp.mtimeNs;
      // A copy whose key changed (its twin was deleted): the record under the old key has no file any more.
      if (before !== null && before !== key && !this.keyInUse(s.kind, before))
        orphans.set(s.kind, [...(orphans.get(s.kind) ?? []), before]);
      this.known.set(s.rel, { kind: s.kind, key, size: s.stamp.size, mtimeNs: s.stamp.mtimeNs });
      if (changed && s.mtimeMs >= this.startedAt.getTime()) {
        const lag = committedAt - s.mtimeMs;
        this.noteLag(lag);
        this.options.onCommit?.({ rel: s.rel, lagMs: lag, deleted: false });
      }
      if (s.recheck) this.markDirty(s.rel, this.quietMs);
    }
    if (orphans.size > 0) {
      const loader = this.loader();
      for (const [kind, keys] of orphans) {
        await loader.prune(kind, keys);
        this.counts.deleted += keys.length;
      }
    }
    this.lastImportAt = new Date(committedAt);
  }

  /** Delete the records of files that are gone (and stay gone: checked again just before). */
  private async deleteGone(gone: Array<{ rel: string; since: number }>): Promise<void> {
    const loader = new Loader(this.options.db, {
      settings: { defaultUser: this.options.defaultUser, tierLimits: this.options.tierLimits },
    });
    const byKind = new Map<KindDescriptor, string[]>();
    const done: typeof gone = [];
    for (const item of gone) {
      const known = this.known.get(item.rel);
      if (!known) continue; // never loaded: nothing to delete
      const still = await fs.lstat(path.join(this.options.root, item.rel)).catch(() => null);
      if (still !== null) {
        this.markDirty(item.rel, 0); // back already (a writer that deletes and recreates)
        continue;
      }
      // Deleted, unless a twin copy now takes the key (it was staged with this batch).
      if (this.options.keepDeleted || known.key === null || this.keyInUse(known.kind, known.key)) {
        this.known.delete(item.rel);
        continue;
      }
      byKind.set(known.kind, [...(byKind.get(known.kind) ?? []), known.key]);
      done.push(item);
    }
    for (const [kind, keys] of byKind) await loader.prune(kind, keys);
    const committedAt = Date.now();
    for (const item of done) {
      this.known.delete(item.rel);
      this.counts.deleted++;
      this.noteLag(committedAt - item.since);
      this.options.onCommit?.({ rel: item.rel, lagMs: committedAt - item.since, deleted: true });
    }
    if (done.length > 0) this.lastImportAt = new Date(committedAt);
  }

  private loader(): Loader {
    return new Loader(this.options.db, { settings: { defaultUser: this.options.defaultUser, tierLimits: this.options.tierLimits } });
  }

  /** One loader at a time per database, as for `pgferry import`: wait for a running import to finish. */
  private async withImportLock<T>(work: () => Promise<T>): Promise<T> {
    const conn = await this.options.db.sql.reserve();
    try {
      for (let waited = 0; ; waited += 200) {
        const [row] = await conn<{ locked: boolean }[]>`select pg_try_advisory_lock(${IMPORT_LOCK_KEY}) as locked`;
        if (row?.locked) break;
        if (waited % 10_000 === 0) this.logger.info('sync: waiting for a running pgferry import to finish');
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      try {
        return await work();
      } finally {
        await conn`select pg_advisory_unlock(${IMPORT_LOCK_KEY})`.catch(() => {});
      }
    } finally {
      conn.release();
    }
  }

  // -- reporting -------------------------------------------------------------

  private noteError(message: string): void {
    this.counts.errors++;
    this.lastError = message;
    this.logger.warn({ error: message }, 'sync: problem');
  }

  private noteLag(ms: number): void {
    this.lastLag = ms;
    this.lags.push(ms);
    if (this.lags.length > LAG_WINDOW) this.lags.shift();
  }

  private percentiles(): { lagP50Ms: number | null; lagP99Ms: number | null } {
    if (this.lags.length === 0) return { lagP50Ms: null, lagP99Ms: null };
    const sorted = [...this.lags].sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    return { lagP50Ms: at(0.5), lagP99Ms: at(0.99) };
  }

  private async maybeReport(): Promise<void> {
    if (Date.now() - this.lastReportAt < (this.options.reportMs ?? 5000)) return;
    await this.report(false).catch((error: unknown) => this.logger.warn({ err: error }, 'sync: could not write sync_state'));
  }

  private async report(final: boolean): Promise<void> {
    this.lastReportAt = Date.now();
    let oldest = Date.now();
    for (const entry of this.dirty.values()) if (entry.since < oldest) oldest = entry.since;
    const { lagP50Ms, lagP99Ms } = this.percentiles();
    const state: SyncStateRow = {
      sourceDir: this.options.root,
      following: this.options.follow && !final,
      lastEventAt: this.lastEventAt,
      lastScanAt: this.lastScanAt,
      lastImportAt: this.lastImportAt,
      lagMs: this.lastLag,
      lagP50Ms,
      lagP99Ms,
      pending: this.dirty.size,
      oldestPendingMs: Date.now() - oldest,
      ...this.counts,
      lastError: this.lastError,
    };
    this.logger.info(
      {
        lagMs: state.lagMs,
        lagP50Ms,
        lagP99Ms,
        pending: state.pending,
        imported: state.imported,
        deleted: state.deleted,
        errors: state.errors,
      },
      'sync lag',
    );
    this.options.onReport?.(state);
    await writeSyncState(this.options.db, state, this.startedAt);
  }
}

async function stageCopy(batchDir: string, rel: string, bytes: Buffer, mtimeMs: number): Promise<void> {
  const target = path.join(batchDir, rel);
  await fs.mkdir(path.dirname(target), { recursive: true });
  await fs.writeFile(target, bytes);
  // The engine defaults some timestamps to the file's mtime: the copy keeps the original's.
  await fs.utimes(target, mtimeMs / 1000, mtimeMs / 1000);
}

async function insideRoot(root: string, abs: string): Promise<boolean> {
  const real = await fs.realpath(abs).catch(() => abs);
  return real === root || real.startsWith(root + path.sep);
}
