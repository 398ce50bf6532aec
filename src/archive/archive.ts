import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { PgFerryError } from '../errors.ts';

/**
 * Phase 5 of the cutover: the JSON tree into one verified tar.gz, and back.
 *
 * The archive holds the kinds' folders (conversations/, usage/, …: never
 * anything else under the data directory, such as the embedded PostgreSQL's
 * files) plus `pgferry-archive-manifest.json`, its last entry, listing every
 * file with size and sha256. It is written to a temporary name, read back in
 * full and checked against the manifest, fsynced, and only then renamed: an
 * archive that exists is complete and readable. Written with the `tar`
 * package (gzip'd POSIX tar any `tar -xzf` reads).
 *
 * Removing the files (`--remove`) is the caller's step, after a clean verify
 * (removeArchived): each file is deleted only if its bytes still hash to the
 * manifest's entry, so a file changed since it was archived stays.
 */

export const ARCHIVE_MANIFEST = 'pgferry-archive-manifest.json';

export interface ArchiveEntry {
  path: string;
  size: number;
  sha256: string;
}

export interface ArchiveManifest {
  format: 'pgferry-archive/1';
  createdAt: string;
  /** The data directory the paths are relative to. */
  root: string;
  folders: string[];
  files: ArchiveEntry[];
  /** Entries not archived (symlinks, special files), with the reason. */
  skipped: Array<{ path: string; reason: string }>;
}

export interface ArchiveResult {
  file: string;
  manifest: ArchiveManifest;
  bytes: number;
  archiveBytes: number;
}

const sortPaths = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

async function sha256File(abs: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(abs)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Regular files below the folders (relative paths, sorted); symlinks and other entries are listed as skipped. */
async function listTree(root: string, folders: readonly string[]): Promise<{ files: string[]; skipped: ArchiveManifest['skipped'] }> {
  const files: string[] = [];
  const skipped: ArchiveManifest['skipped'] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries = await fs.readdir(path.join(root, rel), { withFileTypes: true });
    for (const entry of entries) {
      const child = `${rel}/${entry.name}`;
      if (entry.isDirectory()) await walk(child);
      else if (entry.isFile()) files.push(child);
      else skipped.push({ path: child, reason: entry.isSymbolicLink() ? 'symlink: not archived' : 'not a regular file' });
    }
  };
  for (const folder of folders) {
    const stat = await fs.lstat(path.join(root, folder)).catch(() => null);
    if (stat?.isDirectory()) await walk(folder);
  }
  return { files: files.sort(sortPaths), skipped };
}

/** Write FILE (tar.gz) of the folders below `root`, with its manifest; read back and checked before it gets its name. */
export async function writeArchive(root: string, folders: readonly string[], file: string): Promise<ArchiveResult> {
  const target = path.resolve(file);
  if (await fs.stat(target).catch(() => null))
    throw new PgFerryError('CONFLICT', `--to ${file} exists already: choose a new file name (an archive is never overwritten)`);
  await fs.mkdir(path.dirname(target), { recursive: true });
  const { files: paths, skipped } = await listTree(root, folders);
  const files: ArchiveEntry[] = [];
  let bytes = 0;
  for (const rel of paths) {
    const abs = path.join(root, rel);
    const stat = await fs.stat(abs);
    files.push({ path: rel, size: stat.size, sha256: await sha256File(abs) });
    bytes += stat.size;
  }
  const manifest: ArchiveManifest = {
    format: 'pgferry-archive/1',
    createdAt: new Date().toISOString(),
    root,
    folders: [...folders],
    files,
    skipped,
  };

  // tar packs paths relative to one directory: a private view holding the manifest and a link to each folder.
  const view = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-archive-'));
  const partial = `${target}.partial`;
  try {
    await fs.writeFile(path.join(view, ARCHIVE_MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    for (const folder of folders)
      if (paths.some((p) => p.startsWith(`${folder}/`))) await fs.symlink(path.join(root, folder), path.join(view, folder));
    await tar.create({ file: partial, cwd: view, gzip: true, portable: true, follow: true, noDirRecurse: true }, [
      ...paths,
      ARCHIVE_MANIFEST,
    ]);
    const check = await checkArchive(partial);
    const problems = compareManifests(manifest, check);
    if (problems.length > 0)
      throw new PgFerryError(
        'CORRUPT_DATA',
        `the archive does not read back as written (${problems.slice(0, 3).join('; ')}): nothing kept`,
      );
    const handle = await fs.open(partial, 'r');
    await handle.sync();
    await handle.close();
    await fs.rename(partial, target);
  } catch (error) {
    await fs.rm(partial, { force: true });
    throw error;
  } finally {
    await fs.rm(view, { recursive: true, force: true });
  }
  return { file: target, manifest, bytes, archiveBytes: (await fs.stat(target)).size };
}

export interface ArchiveCheck {
  manifest: ArchiveManifest | null;
  /** Every file entry as read back: path, size and sha256 of its content. */
  entries: Map<string, ArchiveEntry>;
  problems: string[];
}

/** Read a whole archive: each file entry's content hashed, the manifest parsed and every entry checked against it. */
export async function checkArchive(file: string): Promise<ArchiveCheck> {
  const entries = new Map<string, ArchiveEntry>();
  const problems: string[] = [];
  let manifestText = '';
  const pending: Promise<void>[] = [];
  try {
    await tar.list({
      file,
      strict: true,
      onReadEntry: (entry) => {
        const entryPath = entry.path.replace(/^\.\//, '');
        if (entry.type !== 'File') {
          entry.resume();
          return;
        }
        const hash = createHash('sha256');
        let size = 0;
        let text = '';
        entry.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          size += chunk.length;
          if (entryPath === ARCHIVE_MANIFEST) text += chunk.toString('utf8');
        });
        pending.push(
          new Promise<void>((resolve) =>
            entry.on('end', () => {
              if (entryPath === ARCHIVE_MANIFEST) manifestText = text;
              else if (entries.has(entryPath)) problems.push(`${entryPath}: twice in the archive`);
              else entries.set(entryPath, { path: entryPath, size, sha256: hash.digest('hex') });
              resolve();
            }),
          ),
        );
      },
    });
    await Promise.all(pending);
  } catch (error) {
    throw new PgFerryError('CORRUPT_DATA', `${file}: not a readable tar.gz (${(error as Error).message})`);
  }
  let manifest: ArchiveManifest | null = null;
  try {
    manifest = manifestText ? (JSON.parse(manifestText) as ArchiveManifest) : null;
  } catch {
    problems.push('the manifest is not valid JSON');
  }
  if (manifest === null) problems.push(`no ${ARCHIVE_MANIFEST} in the archive: not a pgferry archive`);
  else problems.push(...compareManifests(manifest, { manifest, entries, problems: [] }));
  return { manifest, entries, problems };
}

/** What differs between a manifest and the entries read back. */
function compareManifests(manifest: ArchiveManifest, check: ArchiveCheck): string[] {
  const problems = [...check.problems];
  for (const expected of manifest.files) {
    const found = check.entries.get(expected.path);
    if (!found) problems.push(`${expected.path}: missing`);
    else if (found.size !== expected.size || found.sha256 !== expected.sha256) problems.push(`${expected.path}: content differs`);
  }
  const listed = new Set(manifest.files.map((f) => f.path));
  for (const entry of check.entries.keys()) if (!listed.has(entry)) problems.push(`${entry}: not in the manifest`);
  return problems;
}

export interface RemoveResult {
  removed: number;
  /** Files kept because they changed since they were archived (or vanished). */
  kept: Array<{ path: string; reason: string }>;
}

/**
 * Delete the archived files whose bytes still hash to their manifest entry,
 * then the folders left empty (the kinds' top-level folders stay).
 */
export async function removeArchived(root: string, manifest: ArchiveManifest): Promise<RemoveResult> {
  const kept: RemoveResult['kept'] = [];
  let removed = 0;
  for (const entry of manifest.files) {
    const abs = path.join(root, entry.path);
    const hash = await sha256File(abs).catch(() => null);
    if (hash !== entry.sha256) {
      kept.push({ path: entry.path, reason: hash === null ? 'gone already' : 'changed since it was archived: kept' });
      continue;
    }
    await fs.rm(abs);
    removed++;
  }
  const dirs = [...new Set(manifest.files.map((f) => path.posix.dirname(f.path)))].sort((a, b) => b.length - a.length);
  for (const dir of dirs) {
    if (manifest.folders.includes(dir)) continue;
    await fs.rmdir(path.join(root, dir)).catch(() => {}); // not empty (a file kept, or written since): stays
  }
  return { removed, kept };
}

/**
 * Put an archive's files back under `dir`: checked in full first; a file
 * already there with other content is a conflict (nothing is overwritten);
 * every restored file is hashed against the manifest.
 */
export async function restoreArchive(file: string, dir: string): Promise<{ restored: number; present: number }> {
  const check = await checkArchive(file);
  if (check.problems.length > 0 || check.manifest === null)
    throw new PgFerryError('CORRUPT_DATA', `${file} fails its check (${check.problems.slice(0, 3).join('; ')}): nothing restored`);
  const manifest = check.manifest;
  await fs.mkdir(dir, { recursive: true });
  const conflicts: string[] = [];
  const present = new Set<string>();
  for (const entry of manifest.files) {
    const hash = await sha256File(path.join(dir, entry.path)).catch(() => null);
    if (hash === null) continue;
    if (hash === entry.sha256) present.add(entry.path);
    else conflicts.push(entry.path);
  }
  if (conflicts.length > 0)
    throw new PgFerryError(
      'CONFLICT',
      `${conflicts.length} files exist in ${dir} with other content (${conflicts.slice(0, 3).join(', ')}${conflicts.length > 3 ? ', …' : ''}): nothing restored; move them away first`,
    );
  const wanted = new Set(manifest.files.map((f) => f.path).filter((p) => !present.has(p)));
  await tar.extract({ file, cwd: dir, strict: true, filter: (p) => wanted.has(p.replace(/^\.\//, '')) });
  const wrong: string[] = [];
  for (const entry of manifest.files) {
    const hash = await sha256File(path.join(dir, entry.path)).catch(() => null);
    if (hash !== entry.sha256) wrong.push(entry.path);
  }
  if (wrong.length > 0) throw new PgFerryError('CORRUPT_DATA', `restored files differ from the manifest: ${wrong.slice(0, 3).join(', ')}`);
  return { restored: wanted.size, present: present.size };
}
