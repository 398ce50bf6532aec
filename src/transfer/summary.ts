/** Plain-text tables for command summaries (stdout, no colour: they end up in logs). */

/**
 * C0 and C1 controls, DEL, Unicode line/paragraph separators and bidi
 * overrides: characters that let a file name (or a reason quoting one) move
 * the cursor, set the window title (OSC), fake a new output line or reorder
 * what a person reads.
 */
const UNSAFE_FOR_TERMINAL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * Text from the data (file names, record keys, reasons) as it may be printed
 * to a terminal: each unsafe character becomes a visible escape (`\x1b`,
 * `\n`, `\u202e`). The one place terminal output is escaped; the JSON Lines
 * report keeps the real text (JSON escapes it already).
 */
export function terminalSafe(text: string): string {
  return text.replace(UNSAFE_FOR_TERMINAL, (ch) => {
    const code = ch.charCodeAt(0);
    if (ch === '\n') return '\\n';
    if (ch === '\r') return '\\r';
    if (ch === '\t') return '\\t';
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

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
