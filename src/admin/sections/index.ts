import { configurationSection } from './configuration.ts';
import { cutoverSection } from './cutover.ts';
import { databaseSection } from './database.ts';
import { fileMovesSection } from './file-moves.ts';
import { quotasSection } from './quotas.ts';
import { runsSection } from './runs.ts';
import type { AdminSection } from './types.ts';

/** The admin page's sections, in page order. A new section: one module in this folder, one line here. */
export const SECTIONS: readonly AdminSection[] = [
  configurationSection,
  cutoverSection,
  runsSection,
  fileMovesSection,
  databaseSection,
  quotasSection,
];
