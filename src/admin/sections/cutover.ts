import { cutoverStatus } from '../../cutover/status.ts';
import { listRuns, type RunRow } from '../../runs/record.ts';
import { listSyncStates, type SyncStatus } from '../../sync/state.ts';
import { badge, formatAge, html, lineChart, table } from '../html.ts';
import { type AdminContext, defineSection } from './types.ts';

/**
 * The cutover panel: the phase of each repository (DESIGN section 5) with its
 * journal depth and shadow-read mismatches, the last import and verify, each
 * followed tree's sync lag, and the next step — the same facts and advice as
 * `pgferry cutover status` (src/cutover/status.ts), which this only draws.
 */

interface CutoverData {
  repositories: Array<{ repository: string; phase: string; journalDepth: number; shadowMismatches: number | null }>;
  lastImport: { id: number; status: string; finishedAt: string | null; ageMs: number } | null;
  lastVerify: { id: number; status: string; finishedAt: string | null; ageMs: number } | null;
  /** First the next step, then what holds it back. */
  advice: string[];
  /** sync_state: one row per followed tree (stale: marked following, but no longer written). */
  syncs: SyncStatus[];
  /** The latest sync run's lag samples, [epoch ms, lag ms]: the small lag chart. */
  syncLagSamples: Array<[number, number]>;
}

function summary(run: RunRow | undefined, now: Date) {
  if (!run) return null;
  return { id: run.id, status: run.status, finishedAt: run.finishedAt, ageMs: now.getTime() - Date.parse(run.finishedAt ?? run.startedAt) };
}

export const cutoverSection = defineSection<CutoverData>({
  id: 'cutover',
  title: 'Cutover',
  async collect(ctx: AdminContext) {
    const runs = ctx.db ? await listRuns(ctx.db.sql, { limit: 200 }) : [];
    const finished = (command: string) => runs.find((run) => run.command === command);
    const status = await cutoverStatus(ctx.config, ctx.db, ctx.now);
    const syncs = ctx.db ? await listSyncStates(ctx.db.sql) : [];
    const lastSync = finished('sync');
    const samples = Array.isArray(lastSync?.progress.lagSamples) ? (lastSync.progress.lagSamples as Array<[number, number]>) : [];
    return {
      repositories: status.repositories.map((r) => ({
        repository: r.name,
        phase: r.phase,
        journalDepth: r.journalDepth,
        shadowMismatches: r.shadow ? r.shadow.mismatches : null,
      })),
      lastImport: summary(finished('import'), ctx.now),
      lastVerify: summary(finished('verify'), ctx.now),
      advice: status.advice,
      syncs,
      syncLagSamples: samples,
    };
  },
  html(data) {
    const last = (label: string, run: CutoverData['lastImport']) =>
      run
        ? html`<dt>${label}</dt><dd><a href="/admin/runs/${run.id}">#${run.id}</a> ${badge(run.status, run.status === 'ok' ? 'ok' : run.status === 'running' ? 'info' : 'bad')} ${formatAge(run.ageMs)} ago</dd>`
        : html`<dt>${label}</dt><dd class="muted">never</dd>`;
    const orDash = (n: number | null) => (n === null ? '—' : n);
    const [next, ...more] = data.advice;
    return html`<p class="next-step"><strong>Next step:</strong> ${next ?? '—'}</p>
      ${more.length > 0 ? html`<ul class="advice">${more.map((line) => html`<li>${line}</li>`)}</ul>` : ''}
      <dl class="facts">${last('last import', data.lastImport)}${last('last verify', data.lastVerify)}</dl>
      ${table(
        ['repository', 'phase', 'journal depth', 'shadow-read mismatches'],
        data.repositories.map((r) => [r.repository, r.phase, r.journalDepth, orDash(r.shadowMismatches)]),
        { numeric: [2, 3] },
      )}
      <p class="muted">— : no shadow reads compared (SHADOW_READ_RATE, in dual and postgres-fallback).</p>
      ${syncHtml(data)}`;
  },
  text(data) {
    const age = (run: CutoverData['lastImport']) => (run ? `#${run.id} ${run.status}, ${formatAge(run.ageMs)} ago` : 'never');
    return [
      `last import ${age(data.lastImport)}; last verify ${age(data.lastVerify)}`,
      ...data.syncs.map((sync) => `sync ${syncLine(sync)}`),
      ...data.advice.map((line, index) => (index === 0 ? `next step: ${line}` : `  also: ${line}`)),
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
