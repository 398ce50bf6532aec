import type { Config } from '../../config.ts';
import type { Database } from '../../db/database.ts';
import type { Store } from '../../store/types.ts';
import type { Raw } from '../html.ts';

/**
 * One section of the admin page (and of `pgferry status`). A section is one
 * module in this folder: `collect` reads the facts (JSON, served by
 * /admin/api/overview), `html` draws them for the page, `text` prints them on
 * a terminal. Add a section by writing a module and listing it in index.ts.
 */

export interface AdminContext {
  config: Config;
  /** The store the server runs on; absent for the CLI's `status`. */
  store?: Store | undefined;
  /** PostgreSQL, when there is one; sections that need it say so otherwise. */
  db?: Database | undefined;
  /** Why there is no `db` although DATABASE_URL is set (unreachable, or the store fell back to JSON files). */
  dbError?: string | undefined;
  now: Date;
}

export interface AdminSection<D = unknown> {
  id: string;
  title: string;
  collect(ctx: AdminContext): Promise<D>;
  html(data: D): Raw;
  text(data: D): string[];
}

/** Lets a list hold sections of different data types. */
export function defineSection<D>(section: AdminSection<D>): AdminSection<unknown> {
  return section as AdminSection<unknown>;
}

export const NEEDS_POSTGRES = 'needs a reachable PostgreSQL (DATABASE_URL): JSON files keep no history';
