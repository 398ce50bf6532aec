import { redactSecrets } from '../log.ts';
import type { RunProblem, RunRow } from '../runs/record.ts';
import { escapeHtml, formatCount, html, type Raw, table } from './html.ts';
import { SECTIONS } from './sections/index.ts';
import type { AdminContext } from './sections/types.ts';

/**
 * The admin page, rendered on the server: it is complete without
 * JavaScript; /admin/assets/admin.js only swaps in fresh sections every few
 * seconds (GET /admin/sections). Sections come from sections/index.ts.
 */

export interface SectionResult {
  id: string;
  title: string;
  data?: unknown;
  /** Why the section could not be collected (redacted). */
  error?: string;
}

/** Every section at once; one that fails (database down) reports its error and the others still show. */
export async function collectSections(ctx: AdminContext): Promise<SectionResult[]> {
  return Promise.all(
    SECTIONS.map(async (section) => {
      try {
        return { id: section.id, title: section.title, data: await section.collect(ctx) };
      } catch (error) {
        return { id: section.id, title: section.title, error: redactSecrets(error instanceof Error ? error.message : String(error)) };
      }
    }),
  );
}

export function renderSections(results: SectionResult[], generatedAt: Date): string {
  const byId = new Map(SECTIONS.map((s) => [s.id, s]));
  const body = results.map((result) => {
    const content =
      result.error === undefined ? byId.get(result.id)!.html(result.data) : html`<p class="badge bad">unavailable: ${result.error}</p>`;
    return html`<section id="${result.id}" class="panel"><h2>${result.title}</h2>${content}</section>`;
  });
  return html`<p class="stamp">updated <time datetime="${generatedAt.toISOString()}">${generatedAt.toISOString().replace('T', ' ').slice(0, 19)} UTC</time></p>${body}`
    .html;
}

function layout(title: string, main: Raw | string, options: { principal?: string; refresh?: boolean } = {}): string {
  const content = typeof main === 'string' ? main : main.html;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><link rel="stylesheet" href="/admin/assets/admin.css">
${options.refresh ? '<script src="/admin/assets/admin.js" defer></script>' : ''}</head>
<body><header><h1><a href="/admin">pgferry</a> · ${escapeHtml(title)}</h1>${
    options.principal
      ? `<form method="post" action="/admin/logout" class="who"><span>${escapeHtml(options.principal)}</span> <button type="submit">sign out</button></form>`
      : ''
  }</header>
<main id="sections"${options.refresh ? ' data-refresh="/admin/sections"' : ''}>${content}</main>
<footer>JSON: <a href="/admin/api/overview">/admin/api/overview</a> · metrics: <a href="/metrics">/metrics</a> · <a href="/docs">API docs</a></footer>
</body></html>`;
}

export function renderPage(results: SectionResult[], generatedAt: Date, principal: string): string {
  return layout('admin', renderSections(results, generatedAt), { principal, refresh: true });
}

export function renderLogin(options: { devMode: boolean; message?: string }): string {
  const hint = options.devMode
    ? 'AUTH_MODE=dev: a user id is enough (it is trusted as an admin), or paste a token.'
    : 'Paste a bearer token (JWT) whose role claim makes it an admin. It is kept in a cookie for this browser session only.';
  return layout(
    'sign in',
    html`<section class="panel login"><h2>Sign in</h2>${options.message ? html`<p class="badge bad">${options.message}</p>` : ''}
      <form method="post" action="/admin/login"><label for="token">${options.devMode ? 'user id or token' : 'admin token'}</label>
      <input id="token" name="token" type="password" autocomplete="off" required maxlength="16384">
      <button type="submit">open the admin page</button></form><p class="muted">${hint}</p></section>`,
  );
}

export function renderRun(run: RunRow, problems: RunProblem[], principal: string): string {
  const counts = Object.entries(run.counts);
  const fields = [...new Set(counts.flatMap(([, c]) => Object.keys(c)))];
  return layout(
    `run ${run.id}`,
    html`<section class="panel"><h2>Run ${run.id}: ${run.command} — ${run.status}</h2>
      <dl class="facts"><dt>source</dt><dd class="path">${run.source ?? '-'}</dd><dt>started</dt><dd>${run.startedAt}</dd>
      <dt>finished</dt><dd>${run.finishedAt ?? '—'}</dd><dt>report</dt><dd class="path">${run.reportPath ?? 'none (pass --report FILE)'}</dd>
      ${run.error ? html`<dt>error</dt><dd>${run.error}</dd>` : ''}</dl>
      ${
        fields.length
          ? table(
              ['kind', ...fields],
              counts.map(([kind, c]) => [kind, ...fields.map((f) => formatCount(c[f] ?? 0))]),
              { numeric: fields.map((_, i) => i + 1) },
            )
          : ''
      }
      <h3>Problems (${formatCount(run.problems)} errors, ${formatCount(run.warnings)} warnings${run.problems + run.warnings > problems.length ? `; the first ${problems.length} are kept here, the report file has all` : ''})</h3>
      ${
        problems.length
          ? table(
              ['severity', 'kind', 'file', 'record', 'reason'],
              problems.map((p) => [p.problem ?? p.severity, p.kind, p.file ?? '-', p.record ?? '-', p.reason]),
            )
          : html`<p class="muted">none</p>`
      }
      <p><a href="/admin">← back</a> · <a href="/admin/api/runs/${run.id}">JSON</a></p></section>`,
    { principal },
  );
}

export function renderMessage(title: string, message: string): string {
  return layout(title, html`<section class="panel"><p class="badge bad">${message}</p><p><a href="/admin">admin page</a></p></section>`);
}
