/**
 * A Content-Disposition header for a user's filename. The filename is
 * hostile input (quotes, CR/LF, NUL, `../`, RTL overrides, 10 KB names): the
 * ASCII fallback keeps only safe printable characters, the RFC 5987
 * `filename*` carries the rest percent-encoded, both bounded in length.
 * Only the last path segment is offered, so a browser never sees a directory.
 */
const MAX_FILENAME_CHARS = 200;

export function contentDisposition(filename: string, disposition: 'attachment' | 'inline' = 'attachment'): string {
  const base = safeFilename(filename);
  const ascii = base.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_');
  return `${disposition}; filename="${ascii}"; filename*=UTF-8''${encodeRfc5987(base)}`;
}

/** The last path segment, without control or bidi-override characters, bounded; "download" when nothing is left. */
export function safeFilename(filename: string): string {
  const last = filename.split(/[/\\]/).pop() ?? '';
  const cleaned = [...last.replace(/[\u0000-\u001f\u007f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '')]
    .slice(0, MAX_FILENAME_CHARS)
    .join('')
    .trim();
  return cleaned === '' || cleaned === '.' || cleaned === '..' ? 'download' : cleaned;
}

function encodeRfc5987(value: string): string {
  return encodeURIComponent(value).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
