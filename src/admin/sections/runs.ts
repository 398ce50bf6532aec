import { listRuns, type RunRow } from '../../runs/record.ts';
import { formatAge, formatCount, html, type Raw, type Segment, stackedBar } from '../html.ts';
import { type AdminContext, defineSection, NEEDS_POSTGRES } from './types.ts';

/** The last runs: a progress bar while running, their counts as a bar, a link to each run's problems. */

interface RunsData {
  available: boolean;
  runs: RunRow[];
}

const LAST_RUNS = 10;

/** Counts as bar segments: import (inserted/updated/unchanged/rejected) or verify (matched/missing/different/extra). */
export function countSegments(run: RunRow): Segment[] {
  const sum = (field: string) => Object.values(run.counts).reduce((n, c) => n + (c[field] ?? 0), 0);
  if (run.command === 'verify') {
    return [
      { label: 'identical', value: sum('matched'), tone: 'ok' },
      { label: 'missing', value: sum('missing'), tone: 'bad' },
      { label: 'different', value: sum('different'), tone: 'bad' },
      { label: 'extra', value: sum('extra'), tone: 'warn' },
      { label: 'unreadable', value: sum('unreadable'), tone: 'bad' },
    ];
  }
  return [
    { label: 'inserted', value: sum('inserted'), tone: 'ok' },
    { label: 'updated', value: sum('updated'), tone: 'info' },
    { label: 'unchanged', value: sum('unchanged'), tone: 'muted' },
    { label: 'rejected', value: sum('rejected'), tone: 'bad' },
  ];
}

function stateOf(run: RunRow): { text: string; tone: Segment['tone'] } {
  if (run.status === 'running') return run.stale ? { text: 'stale', tone: 'warn' } : { text: 'running', tone: 'info' };
  if (run.status === 'ok') return { text: 'ok', tone: 'ok' };
  return { text: `${run.status} (exit ${run.exitCode})`, tone: run.status === 'interrupted' ? 'warn' : 'bad' };
}

function progressCell(run: RunRow): Raw {
  const { done = 0, total = 0 } = run.progress;
  if (run.status === 'running') {
    const percent = total > 0 ? Math.floor((done / total) * 100) : 0;
    return html`<progress class="run-progress" value="${done}" max="${Math.max(total, 1)}">${percent}%</progress> <span class="num">${formatCount(done)} / ${formatCount(total)}</span>`;
  }
  return stackedBar(countSegments(run));
}

function runRow(run: RunRow, now: Date): Raw {
  const state = stateOf(run);
  const age = formatAge(now.getTime() - Date.parse(run.startedAt));
  const problems =
    run.problems + run.warnings > 0
      ? html`<a href="/admin/runs/${run.id}">${formatCount(run.problems)} problems, ${formatCount(run.warnings)} warnings</a>`
      : html`<span class="muted">none</span>`;
  return html`<tr data-run-id="${run.id}" data-status="${run.status}">
    <td class="num">${run.id}</td><td>${run.command}</td><td title="${run.startedAt}">${age} ago</td>
    <td><span class="badge ${state.tone}">${state.text}</span></td><td>${progressCell(run)}</td><td>${problems}</td>
    <td class="path">${run.source ?? '-'}${run.reportPath ? html`<br><span class="muted">report ${run.reportPath}</span>` : ''}</td></tr>`;
}

export const runsSection = defineSection<RunsData & { now: string }>({
  id: 'runs',
  title: 'Last runs',
  async collect(ctx: AdminContext) {
    if (!ctx.db) return { available: false, runs: [], now: ctx.now.toISOString() };
    return { available: true, runs: await listRuns(ctx.db.sql, { limit: LAST_RUNS }), now: ctx.now.toISOString() };
  },
  html(data) {
    if (!data.available) return html`<p class="muted">${NEEDS_POSTGRES}</p>`;
    if (data.runs.length === 0) return html`<p class="muted">No runs yet: <code>pgferry import --from DIR</code> records one.</p>`;
    const now = new Date(data.now);
    return html`<table class="runs"><thead><tr><th class="num">id</th><th>command</th><th>started</th><th>status</th><th>progress / counts</th><th>problems</th><th>source</th></tr></thead>
      <tbody>${data.runs.map((run) => runRow(run, now))}</tbody></table>`;
  },
  text(data) {
    if (!data.available) return [NEEDS_POSTGRES];
    if (data.runs.length === 0) return ['no runs yet'];
    const now = Date.parse(data.now);
    return data.runs.slice(0, 5).map((run) => {
      const counts = countSegments(run)
        .filter((s) => s.value > 0)
        .map((s) => `${s.label} ${formatCount(s.value)}`)
        .join(', ');
      return `#${run.id} ${run.command.padEnd(7)} ${stateOf(run).text.padEnd(18)} ${formatAge(now - Date.parse(run.startedAt))} ago  ${counts || '-'}${run.problems ? `; ${run.problems} problems` : ''}`;
    });
  },
});
