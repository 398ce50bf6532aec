/**
 * Record versions for "apply only if newer" (schema 0004, import_log.source_version).
 *
 * A record's version is the instant its source file was read, in microseconds
 * since the epoch, taken just BEFORE the read. Whoever reads a file later sees
 * its content as of at least that later instant, so among all writers of one
 * record (import, sync, the dual-write mirror) the one with the largest
 * version read the newest content. Every write after the app's last change is
 * followed by a mirror (or a journal entry replayed later) that reads the file
 * again, so the last version to win is always the file as it is now.
 *
 * Wall-clock based: all writers of one DATA_DIR run on one host (the JSON
 * store is single-host), so they share the clock. A clock stepped backwards
 * by more than the time between two writes could make a newer read lose; the
 * next write (or `pgferry verify` then `import`) repairs it.
 */
let last = 0;

/** Now, in microseconds; strictly increasing within this thread. */
export function sourceVersionNow(): number {
  const now = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  last = now > last ? now : last + 1;
  return last;
}
