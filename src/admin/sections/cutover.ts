import { modeOf, REPOSITORIES, type StorageMode } from '../../config.ts';
import { listRuns, type RunRow } from '../../runs/record.ts';
import { listSyncStates, type SyncStatus } from '../../sync/state.ts';
import { badge, formatAge, html, lineChart, table } from '../html.ts';
import { type AdminContext, defineSection } from './types.ts';

/**
 * The cutover panel: the phase of each repository (DESIGN section 5), the
 * last import and verify and their age, and the next step. Sync lag, journal
 * depth and shadow-read mismatches arrive with the cutover modes: their
 * fields are here (null until then) so that work only has to fill them.
 */

const PHASES: Record<StorageMode, string> = {
  json: '1 · JSON files only',
  dual: '2 · dual write (JSON primary)',
  'postgres-fallback': '3 · PostgreSQL primary, JSON fallback',
  postgres: '4 · PostgreSQL only',
};

interface CutoverData {
  repositories: Array<{
    repository: string;
    mode: StorageMode;
    phase: string;
    syncLagSeconds: number | null;
    journalDepth: number | null;
    shadowMismatches: number | null;
  }>;
  lastImport: { id: number; status: string; finishedAt: string | null; ageMs: number } | null;
  lastVerify: { id: number; status: string; finishedAt: string | null; ageMs: number } | null;
  nextStep: string;
  /** sync_state: one row per followed tree (stale: marked following, but no longer written). */
  syncs: SyncStatus[];
  /** The latest sync run's lag samples, [epoch ms, lag ms]: the small lag chart. */
  syncLagSamples: Array<[number, number]>;
}

function summary(run: RunRow | undefined, now: Date) {
  if (!run) return null;
  return { id: run.id, status: run.status, finishedAt: run.finishedAt, ageMs: now.getTime() - Date.parse(run.finishedAt ?? run.startedAt) };
}

export function nextStep(data: Pick<CutoverData, 'repositories' | 'lastImport' | 'lastVerify'>, hasDatabase: boolean): string {
  const modes = new Set(data.repositories.map((r) => r.mode));
  if (!hasDatabase) return 'Set DATABASE_URL, then run `pgferry import --from DATA_DIR` to copy the JSON files into PostgreSQL.';
  if (!data.lastImport) return 'Run `pgferry import --from DATA_DIR` to copy the JSON files into PostgreSQL.';
  if (data.lastImport.status === 'running') return 'An import is running: wait for it, then run `pgferry verify`.';
  if (data.lastImport.status !== 'ok') return 'The last import did not finish cleanly: read its problems, fix the files, run it again.';
  const verifiedAfterImport = data.lastVerify && data.lastVerify.ageMs <= data.lastImport.ageMs;
  if (!verifiedAfterImport) return 'Run `pgferry verify --from DATA_DIR` to prove the database holds what the files hold.';
  if (data.lastVerify!.status !== 'ok') return 'The last verify found differences: read its report, re-run the import, verify again.';
  if (modes.size === 1 && modes.has('postgres'))
    return 'Done: every repository runs on PostgreSQL. Keep the JSON files as a backup for a while.';
  return 'Verified: switch the repositories to PostgreSQL (STORAGE_MODE=postgres, or one at a time with STORAGE_<NAME>).';
}

export const cutoverSection = defineSection<CutoverData>({
  id: 'cutover',
  title: 'Cutover',
  async collect(ctx: AdminContext) {
    const runs = ctx.db ? await listRuns(ctx.db.sql, { limit: 200 }) : [];
    const finished = (command: string) => runs.find((run) => run.command === command);
    const partial = {
      repositories: REPOSITORIES.map((repository) => {
        const mode = modeOf(ctx.config, repository);
        return { repository, mode, phase: PHASES[mode], syncLagSeconds: null, journalDepth: null, shadowMismatches: null };
      }),
      lastImport: summary(finished('import'), ctx.now),
      lastVerify: summary(finished('verify'), ctx.now),
    };
    const syncs = ctx.db ? await listSyncStates(ctx.db.sql) : [];
    const lastSync = finished('sync');
    const samples = Array.isArray(lastSync?.progress.lagSamples) ? (lastSync.progress.lagSamples as Array<[number, number]>) : [];
    return { ...partial, nextStep: nextStep(partial, ctx.db !== undefined), syncs, syncLagSamples: samples };
  },
  html(data) {
    const last = (label: string, run: CutoverData['lastImport']) =>
      run
        ? html`<dt>${label}</dt><dd><a href="/admin/runs/${run.id}">#${run.id}</a> ${badge(run.status, run.status === 'ok' ? 'ok' : run.status === 'running' ? 'info' : 'bad')} ${formatAge(run.ageMs)} ago</dd>`
        : html`<dt>${label}</dt><dd class="muted">never</dd>`;
    const orDash = (n: number | null) => (n === null ? '—' : n);
    return html`<p class="next-step"><strong>Next step:</strong> ${data.nextStep}</p>
      <dl class="facts">${last('last import', data.lastImport)}${last('last verify', data.lastVerify)}</dl>
      ${table(
        ['repository', 'phase', 'sync lag (s)', 'journal depth', 'shadow-read mismatches'],
        data.repositories.map((r) => [r.repository, r.phase, orDash(r.syncLagSeconds), orDash(r.journalDepth), orDash(r.shadowMismatches)]),
        { numeric: [2, 3, 4] },
      )}
      <p class="muted">— : not measured yet (sync and dual-write arrive with the cutover modes).</p>
      ${syncHtml(data)}`;
  },
  text(data) {
    const age = (run: CutoverData['lastImport']) => (run ? `#${run.id} ${run.status}, ${formatAge(run.ageMs)} ago` : 'never');
    return [
      `last import ${age(data.lastImport)}; last verify ${age(data.lastVerify)}`,
      ...data.syncs.map((sync) => `sync ${syncLine(sync)}`),
      `next step: ${data.nextStep}`,
    ];
  },
});

function syncState(sync: SyncStatus): string {
  if (sync.stale) return 'stale';
  return sync.following ? 'following' : 'stopped';
}

/** One line per followed tree, for `pgferry status`. */
export function syncLine(sync: SyncStatus): string {
  const lag = sync.lagSeconds === null ? 'lag —' : `lag ${sync.lagSeconds.toFixed(1)} s`;
  const event = sync.lastEventAt ? `, last event ${sync.lastEventAt}` : '';
  return `${sync.sourceDir}: ${syncState(sync)}, ${lag}, ${sync.pending} pending, ${sync.errors} errors${event}`;
}

function syncHtml(data: CutoverData) {
  if (data.syncs.length === 0)
    return html`<p class="muted">sync: never ran (pgferry sync --follow keeps PostgreSQL up to date during dual write)</p>`;
  const tone = (sync: SyncStatus) => (sync.stale ? 'bad' : sync.following ? 'ok' : 'info');
  const seconds = (s: number | null) => (s === null ? '—' : s.toFixed(1));
  return html`${table(
    ['sync of', 'state', 'lag (s)', 'p99 (ms)', 'pending', 'errors', 'last event', 'updated'],
    data.syncs.map((sync) => [
      sync.sourceDir,
      badge(syncState(sync), tone(sync)),
      seconds(sync.lagSeconds),
      sync.lagP99Ms === null ? '—' : Math.round(sync.lagP99Ms),
      sync.pending,
      sync.errors,
      sync.lastEventAt ?? '—',
      sync.updatedAt,
    ]),
    { numeric: [2, 3, 4, 5] },
  )}
    ${lineChart([{ label: 'sync lag', tone: 'info', points: data.syncLagSamples.map(([t, ms]) => [t, ms / 1000] as [number, number]) }], {
      title: 'sync lag (s), last samples',
      height: 70,
      unit: (s) => `${s.toFixed(1)} s`,
    })}`;
}
