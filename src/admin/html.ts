/**
 * Small HTML and SVG builders for the admin page. Everything dynamic goes
 * through `escapeHtml`; the page's Content-Security-Policy forbids inline
 * script and style, so bars and charts are SVG attributes, never `style=`.
 */

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

/** A tagged template whose interpolations are escaped unless they are `raw(...)`. */
export class Raw {
  readonly html: string;
  constructor(html: string) {
    this.html = html;
  }
  toString(): string {
    return this.html;
  }
}

export const raw = (html: string) => new Raw(html);

export function html(strings: TemplateStringsArray, ...values: unknown[]): Raw {
  let out = strings[0]!;
  values.forEach((value, i) => {
    out += render(value) + strings[i + 1]!;
  });
  return new Raw(out);
}

function render(value: unknown): string {
  if (value instanceof Raw) return value.html;
  if (Array.isArray(value)) return value.map(render).join('');
  if (value === undefined || value === null || value === false) return '';
  return escapeHtml(value);
}

export function table(headers: string[], rows: unknown[][], options: { numeric?: number[] } = {}): Raw {
  const numeric = new Set(options.numeric ?? []);
  const cell = (value: unknown, i: number) => (numeric.has(i) ? html`<td class="num">${value}</td>` : html`<td>${value}</td>`);
  return html`<table><thead><tr>${headers.map((h, i) => (numeric.has(i) ? html`<th class="num">${h}</th>` : html`<th>${h}</th>`))}</tr></thead><tbody>${rows.map(
    (row) => html`<tr>${row.map(cell)}</tr>`,
  )}</tbody></table>`;
}

export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

export function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 36 * 3600) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86_400).toFixed(1)} days`;
}

export interface Segment {
  label: string;
  value: number;
  /** A class of admin.css: ok, warn, bad, info, muted. */
  tone: 'ok' | 'warn' | 'bad' | 'info' | 'muted';
}

/** One horizontal bar split into segments (counts by outcome): an SVG, so it needs no inline style. */
export function stackedBar(segments: Segment[], options: { width?: number; height?: number; title?: string } = {}): Raw {
  const width = options.width ?? 240;
  const height = options.height ?? 14;
  const total = segments.reduce((n, s) => n + Math.max(0, s.value), 0);
  let x = 0;
  const rects = segments
    .filter((s) => s.value > 0)
    .map((s) => {
      const w = total === 0 ? 0 : (s.value / total) * width;
      const rect = html`<rect class="${s.tone}" x="${x.toFixed(2)}" y="0" width="${w.toFixed(2)}" height="${height}"><title>${s.label}: ${formatCount(s.value)}</title></rect>`;
      x += w;
      return rect;
    });
  const label = options.title ?? segments.map((s) => `${s.label} ${formatCount(s.value)}`).join(', ');
  return html`<svg class="chart bar" role="img" aria-label="${label}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"><rect class="track" x="0" y="0" width="${width}" height="${height}"/>${rects}</svg>`;
}

export interface Series {
  label: string;
  tone: Segment['tone'];
  /** [x, y] points, x ascending (e.g. epoch ms). */
  points: Array<[number, number]>;
}

/** A small line chart with a y-axis maximum label; no axes library, a few SVG elements. */
export function lineChart(
  series: Series[],
  options: { width?: number; height?: number; title: string; unit?: (y: number) => string },
): Raw {
  const width = options.width ?? 360;
  const height = options.height ?? 120;
  const pad = 4;
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return html`<p class="muted">${options.title}: no data yet</p>`;
  const xs = all.map(([x]) => x);
  const ys = all.map(([, y]) => y);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const yMax = Math.max(1, ...ys);
  const sx = (x: number) => pad + (x1 === x0 ? (width - 2 * pad) / 2 : ((x - x0) / (x1 - x0)) * (width - 2 * pad));
  const sy = (y: number) => height - pad - (y / yMax) * (height - 2 * pad);
  const lines = series.map((s) => {
    const d = s.points.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    return html`<path class="line ${s.tone}" d="${d}"><title>${s.label}</title></path>`;
  });
  const unit = options.unit ?? formatCount;
  return html`<figure class="linechart"><svg class="chart line-chart" role="img" aria-label="${options.title}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"><rect class="frame" x="0" y="0" width="${width}" height="${height}"/>${lines}<text class="axis" x="${pad + 2}" y="${pad + 10}">${unit(yMax)}</text></svg><figcaption>${options.title}: ${series.map(
    (s) => html`<span class="key ${s.tone}">${s.label}</span> `,
  )}</figcaption></figure>`;
}

export function badge(text: string, tone: Segment['tone']): Raw {
  return html`<span class="badge ${tone}">${text}</span>`;
}
