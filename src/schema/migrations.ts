import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PgFerryError } from '../errors.ts';

/**
 * Migrations are numbered plain SQL files shipped with the package:
 * `NNNN_name.up.sql` and `NNNN_name.down.sql`. A file whose first line is
 * `-- pgferry:no-transaction` runs statement by statement outside a
 * transaction (for CREATE INDEX CONCURRENTLY and friends).
 */

export const NO_TRANSACTION_MARKER = '-- pgferry:no-transaction';

export interface MigrationFile {
  sql: string;
  checksum: string;
  noTransaction: boolean;
}

export interface Migration {
  version: number;
  name: string;
  up: MigrationFile;
  down: MigrationFile | undefined;
}

export const DEFAULT_MIGRATIONS_DIR = fileURLToPath(new URL('./sql/', import.meta.url)).replace(
  // When running from dist/, the SQL files stay in src/schema/sql (package "files").
  `${path.sep}dist${path.sep}schema${path.sep}`,
  `${path.sep}src${path.sep}schema${path.sep}`,
);

const FILE_PATTERN = /^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$/;

export function checksumOf(sql: string): string {
  return createHash('sha256').update(sql.replace(/\r\n/g, '\n')).digest('hex');
}

function toFile(sql: string): MigrationFile {
  return { sql, checksum: checksumOf(sql), noTransaction: sql.trimStart().startsWith(NO_TRANSACTION_MARKER) };
}

export function loadMigrations(dir: string = DEFAULT_MIGRATIONS_DIR): Migration[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    throw new PgFerryError('MIGRATION_ERROR', `migrations directory ${dir} cannot be read`);
  }
  const byVersion = new Map<number, { name: string; up?: MigrationFile; down?: MigrationFile }>();
  for (const fileName of names.sort()) {
    const match = FILE_PATTERN.exec(fileName);
    if (!match) continue;
    const [, digits, name, direction] = match as unknown as [string, string, string, 'up' | 'down'];
    const version = Number(digits);
    const entry = byVersion.get(version) ?? { name };
    if (entry.name !== name) {
      throw new PgFerryError('MIGRATION_ERROR', `migration ${digits} has two names (${entry.name}, ${name}) in ${dir}`);
    }
    entry[direction] = toFile(readFileSync(path.join(dir, fileName), 'utf8'));
    byVersion.set(version, entry);
  }
  const migrations: Migration[] = [];
  const versions = [...byVersion.keys()].sort((a, b) => a - b);
  versions.forEach((version, index) => {
    const entry = byVersion.get(version)!;
    if (version !== index + 1) {
      throw new PgFerryError(
        'MIGRATION_ERROR',
        `migrations must be numbered 0001, 0002, … without gaps; found ${version} at position ${index + 1}`,
      );
    }
    if (!entry.up) throw new PgFerryError('MIGRATION_ERROR', `migration ${version} (${entry.name}) has no .up.sql file`);
    migrations.push({ version, name: entry.name, up: entry.up, down: entry.down });
  });
  return migrations;
}

/**
 * Split SQL into statements on top-level semicolons, respecting quotes,
 * dollar-quoted bodies and comments. Only used for no-transaction files,
 * which must run one statement at a time.
 */
export function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let current = '';
  let i = 0;
  while (i < sql.length) {
    const ch = sql[i]!;
    const rest = sql.slice(i);
    if (rest.startsWith('--')) {
      const end = sql.indexOf('\n', i);
      const stop = end === -1 ? sql.length : end + 1;
      current += sql.slice(i, stop);
      i = stop;
    } else if (rest.startsWith('/*')) {
      const end = sql.indexOf('*/', i + 2);
      const stop = end === -1 ? sql.length : end + 2;
      current += sql.slice(i, stop);
      i = stop;
    } else if (ch === "'" || ch === '"') {
      let j = i + 1;
      while (j < sql.length && !(sql[j] === ch && sql[j + 1] !== ch)) j += sql[j] === ch ? 2 : 1;
      current += sql.slice(i, j + 1);
      i = j + 1;
    } else if (ch === '$') {
      const tag = /^\$[A-Za-z_]*\$/.exec(rest)?.[0];
      if (tag) {
        const end = sql.indexOf(tag, i + tag.length);
        const stop = end === -1 ? sql.length : end + tag.length;
        current += sql.slice(i, stop);
        i = stop;
      } else {
        current += ch;
        i++;
      }
    } else if (ch === ';') {
      if (stripComments(current).trim()) statements.push(current.trim());
      current = '';
      i++;
    } else {
      current += ch;
      i++;
    }
  }
  if (stripComments(current).trim()) statements.push(current.trim());
  return statements;
}

function stripComments(sql: string): string {
  return sql.replace(/--[^\n]*/g, '').replace(/\/\*[\s\S]*?\*\//g, '');
}
