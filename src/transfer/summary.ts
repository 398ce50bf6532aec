/** Plain-text tables for command summaries (stdout, no colour: they end up in logs). */

export function formatTable(header: string[], rows: Array<Array<string | number>>): string {
  const cells = [header, ...rows.map((row) => row.map((cell) => (typeof cell === 'number' ? cell.toLocaleString('en-US') : cell)))];
  const widths = header.map((_, i) => Math.max(...cells.map((row) => String(row[i] ?? '').length)));
  return cells
    .map((row) => row.map((cell, i) => (i === 0 ? String(cell).padEnd(widths[i]!) : String(cell).padStart(widths[i]!))).join('  '))
    .join('\n');
}

export const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export const perSecond = (count: number, ms: number) => (ms > 0 ? Math.round((count * 1000) / ms).toLocaleString('en-US') : '-');

/** Peak resident set size of this process so far, in MB. */
export const peakRssMb = () => Math.round(process.resourceUsage().maxRSS / 1024);
