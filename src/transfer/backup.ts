import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createGzip } from 'node:zlib';
import { PgFerryError } from '../errors.ts';

/**
 * `--backup FILE.tar.gz`: the source tree as a gzip'd POSIX tar (readable by
 * any `tar`), plus `pgferry-backup-manifest.json` as the archive's last entry
 * listing every file with its size and sha256. Written before anything is
 * imported, to a temporary name, fsynced, then renamed: a backup that exists
 * is complete. Sources are opened read-only, never changed.
 *
 * Symlinks inside the tree are stored as links; links leading outside are
 * left out and listed in the manifest under `skipped`.
 */

export const MANIFEST_NAME = 'pgferry-backup-manifest.json';

export interface ManifestEntry {
  path: string;
  size: number;
  sha256: string;
}

export interface BackupManifest {
  format: 'pgferry-backup/1';
  createdAt: string;
  /** The directory the paths are relative to. */
  root: string;
  files: ManifestEntry[];
  links: Array<{ path: string; target: string }>;
  skipped: Array<{ path: string; reason: string }>;
}

export interface BackupResult {
  file: string;
  files: number;
  bytes: number;
  archiveBytes: number;
  manifest: BackupManifest;
}

// ---------------------------------------------------------------------------
// A minimal tar writer (POSIX ustar, with pax headers for long names and big sizes)

const BLOCK = 512;

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

function header(name: string, size: number, type: '0' | '2' | 'x', mtime: number, linkname = ''): Buffer {
  const block = Buffer.alloc(BLOCK);
  block.write(name, 0, 100, 'utf8');
  block.write(octal(type === '2' ? 0o777 : 0o644, 8), 100, 'ascii');
  block.write(octal(0, 8), 108, 'ascii');
  block.write(octal(0, 8), 116, 'ascii');
  block.write(octal(size, 12), 124, 'ascii');
  block.write(octal(Math.floor(mtime), 12), 136, 'ascii');
  block.write('        ', 148, 'ascii');
  block.write(type, 156, 'ascii');
  block.write(linkname, 157, 100, 'utf8');
  block.write('ustar\0', 257, 'ascii');
  block.write('00', 263, 'ascii');
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return block;
}

/** A pax record "<len> key=value\n", where len counts the whole record. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let length = Buffer.byteLength(body) + 1;
  while (String(length).length + Buffer.byteLength(body) !== length) length = String(length).length + Buffer.byteLength(body);
  return `${length}${body}`;
}

const padding = (size: number) => Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
const MAX_USTAR_SIZE = 8 ** 11 - 1;

/** Header blocks for an entry: a pax header first when the name or size does not fit ustar. */
function entryHeaders(name: string, size: number, type: '0' | '2', mtime: number, linkname = ''): Buffer[] {
  const records: string[] = [];
  if (Buffer.byteLength(name) > 99 || /[^\x20-\x7e]/.test(name)) records.push(paxRecord('path', name));
  if (linkname && (Buffer.byteLength(linkname) > 99 || /[^\x20-\x7e]/.test(linkname))) records.push(paxRecord('linkpath', linkname));
  if (size > MAX_USTAR_SIZE) records.push(paxRecord('size', String(size)));
  const out: Buffer[] = [];
  if (records.length > 0) {
    const pax = Buffer.from(records.join(''));
    out.push(header('PaxHeader', pax.length, 'x', mtime), pax, padding(pax.length));
  }
  const shortName = Buffer.byteLength(name) > 99 ? name.slice(-99) : name;
  out.push(header(shortName, size > MAX_USTAR_SIZE ? 0 : size, type, mtime, linkname.slice(0, 99)));
  return out;
}

// ---------------------------------------------------------------------------

interface TreeEntry {
  rel: string;
  abs: string;
  type: 'file' | 'link';
  target?: string;
}

async function walk(root: string, relDir: string, out: TreeEntry[], skipped: BackupManifest['skipped']): Promise<void> {
  const absDir = path.join(root, relDir);
  for (const name of (await fs.readdir(absDir)).sort()) {
    const rel = relDir ? `${relDir}/${name}` : name;
    const abs = path.join(absDir, name);
    const stat = await fs.lstat(abs);
    if (stat.isDirectory()) await walk(root, rel, out, skipped);
    else if (stat.isFile()) out.push({ rel, abs, type: 'file' });
    else if (stat.isSymbolicLink()) {
      const target = await fs.readlink(abs);
      const resolved = await fs.realpath(abs).catch(() => null);
      if (resolved === null) skipped.push({ path: rel, reason: 'broken symlink' });
      else if (resolved !== root && !resolved.startsWith(root + path.sep))
        skipped.push({ path: rel, reason: 'symlink leads outside the tree' });
      else out.push({ rel, abs, type: 'link', target });
    } else skipped.push({ path: rel, reason: 'not a regular file' });
  }
}

/**
 * Write `archive` (a .tar.gz) of the folders `include` (relative to `root`;
 * those that do not exist are skipped).
 */
export async function writeBackup(root: string, include: readonly string[], archive: string): Promise<BackupResult> {
  const target = path.resolve(archive);
  if (target === root || target.startsWith(root + path.sep)) {
    throw new PgFerryError('CONFIG_ERROR', `--backup ${archive} is inside --from: write the backup somewhere else`);
  }
  const manifest: BackupManifest = {
    format: 'pgferry-backup/1',
    createdAt: new Date().toISOString(),
    root,
    files: [],
    links: [],
    skipped: [],
  };
  const entries: TreeEntry[] = [];
  for (const folder of include) {
    const stat = await fs.lstat(path.join(root, folder)).catch(() => null);
    if (stat?.isDirectory()) await walk(root, folder, entries, manifest.skipped);
  }

  const temporary = `${target}.partial-${process.pid}`;
  const gzip = createGzip({ level: 6 });
  const output = createWriteStream(temporary, { flags: 'wx' });
  gzip.pipe(output);
  const failed = new Promise<never>((_, reject) => {
    output.once('error', reject);
    gzip.once('error', reject);
  });
  failed.catch(() => {});
  const write = async (chunk: Buffer) => {
    if (!gzip.write(chunk)) await Promise.race([once(gzip, 'drain'), failed]);
  };

  let bytes = 0;
  try {
    for (const entry of entries) {
      const stat = await fs.lstat(entry.abs);
      const mtime = stat.mtimeMs / 1000;
      if (entry.type === 'link') {
        for (const block of entryHeaders(entry.rel, 0, '2', mtime, entry.target)) await write(block);
        manifest.links.push({ path: entry.rel, target: entry.target! });
        continue;
      }
      for (const block of entryHeaders(entry.rel, stat.size, '0', mtime)) await write(block);
      const hash = createHash('sha256');
      const handle = await fs.open(entry.abs, 'r');
      try {
        let done = 0;
        const buffer = Buffer.allocUnsafe(1 << 20);
        while (done < stat.size) {
          const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, stat.size - done), done);
          if (bytesRead === 0) break;
          const chunk = Buffer.from(buffer.subarray(0, bytesRead));
          hash.update(chunk);
          await write(chunk);
          done += bytesRead;
        }
        if (done !== stat.size)
          throw new PgFerryError('CONFIG_ERROR', `${entry.rel} changed size while being backed up: stop the app and retry`);
      } finally {
        await handle.close();
      }
      await write(padding(stat.size));
      manifest.files.push({ path: entry.rel, size: stat.size, sha256: hash.digest('hex') });
      bytes += stat.size;
    }
    const body = Buffer.from(`${JSON.stringify(manifest, null, 1)}\n`);
    for (const block of entryHeaders(MANIFEST_NAME, body.length, '0', Date.now() / 1000)) await write(block);
    await write(body);
    await write(padding(body.length));
    await write(Buffer.alloc(BLOCK * 2)); // end-of-archive marker
    gzip.end();
    await Promise.race([once(output, 'finish'), failed]);
    const handle = await fs.open(temporary, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temporary, target);
    const dir = await fs.open(path.dirname(target), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch (error) {
    gzip.destroy();
    output.destroy();
    await fs.rm(temporary, { force: true });
    if (error instanceof PgFerryError) throw error;
    throw new PgFerryError('CONFIG_ERROR', `cannot write backup ${archive}: ${(error as Error).message}`);
  }
  const archiveBytes = (await fs.stat(target)).size;
  return { file: target, files: manifest.files.length, bytes, archiveBytes, manifest };
}
