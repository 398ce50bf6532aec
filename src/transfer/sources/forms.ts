import fs from 'node:fs';
import path from 'node:path';
import { isObject } from '../../formats/validated.ts';
import type { KindScan } from '../kinds/types.ts';
import { isIgnorable, type SourceFile } from '../source.ts';
import { parseDocument } from '../validate.ts';

/**
 * Paths of the forms app's `generated/` tree (seed 002, REAL-FORMATS.md A.0),
 * shared by its two kinds (kinds/submissions, kinds/jobs). `--from` is the
 * app's GENERATED_DIR:
 *
 *   submissions/<submission id>.json   every writer of the JSON era
 *   sub_<hex>.json                     cleaning at 8790837 wrote here (top level, no job)
 *   jobs/<job_id>.json
 *
 * Not records, and not read: drafts/ (raw request JSON of /save-draft),
 * uploads/, the MMR module's files, legacy report-*.status.json.
 */

/** A record file's key: its name without `.json`. */
export function formsFileKey(file: SourceFile): string {
  const name = file.rel.slice(file.rel.lastIndexOf('/') + 1);
  return name.endsWith('.json') ? name.slice(0, -'.json'.length) : name;
}

/** The top-level submission files of cleaning at 8790837. */
const TOP_LEVEL_SUBMISSION = /^sub_[0-9A-Za-z_-]+\.json$/;

/** List the JSON files of one folder of the tree; anything else is reported (a directory) or counted (temp files). */
export async function scanFolder(walk: KindScan, folder: string): Promise<void> {
  for (const entry of await walk.folder(folder)) {
    if (entry.type === 'file' && entry.name.endsWith('.json') && !isIgnorable(entry.name)) walk.add(entry);
    else if (entry.type === 'dir') {
      walk.problem({ rel: entry.rel, key: null, reason: `unexpected directory in ${folder}/: not read`, severity: 'warning' });
    } else walk.ignore();
  }
}

/**
 * The submissions the cleaning module wrote at the top of generated/ (8790837).
 * Every other top-level entry belongs to the app or to another kind: it is
 * neither followed nor reported here (a symlink at the top is not read).
 */
export async function scanTopLevelSubmissions(walk: KindScan): Promise<void> {
  let entries: fs.Dirent[];
  try {
    entries = await fs.promises.readdir(walk.root, { withFileTypes: true });
  } catch {
    return; // the walk of the kind's folders reports an unreadable root
  }
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (!entry.isFile() || !TOP_LEVEL_SUBMISSION.test(entry.name)) continue;
    const abs = path.join(walk.root, entry.name);
    const stat = await fs.promises.stat(abs).catch(() => null);
    if (stat) walk.add({ name: entry.name, abs, rel: entry.name, type: 'file', size: stat.size });
  }
}

/**
 * meta.module of each submission's job, read from jobs/ once per thread and
 * only when a submission's module cannot be read off the submission itself
 * (in the real data, never: every layout names its module). Unreadable job
 * files are skipped here; the jobs kind reports them.
 */
const jobModules = new Map<string, Map<string, string>>();

export function jobModuleOf(root: string, submissionId: string): string | undefined {
  let index = jobModules.get(root);
  if (!index) {
    index = new Map();
    jobModules.set(root, index);
    const dir = path.join(root, 'jobs');
    let names: string[] = [];
    try {
      names = fs.readdirSync(dir).filter((n) => n.endsWith('.json'));
    } catch {
      // no jobs/ folder: no job modules
    }
    for (const name of names) {
      let text: string;
      try {
        text = fs.readFileSync(path.join(dir, name), 'utf8');
      } catch {
        continue;
      }
      const parsed = parseDocument(text);
      if (!parsed.ok || !isObject(parsed.value) || !isObject(parsed.value.meta)) continue;
      const { submission_id: link, module } = parsed.value.meta;
      if (typeof link === 'string' && typeof module === 'string' && !index.has(link)) index.set(link, module);
    }
  }
  return index.get(submissionId);
}
