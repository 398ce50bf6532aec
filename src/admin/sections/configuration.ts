import { describeConfig, modeOf, REPOSITORIES, repositoryModeVariable } from '../../config.ts';
import { redactSecrets } from '../../log.ts';
import { Migrator } from '../../schema/migrator.ts';
import { badge, html, table } from '../html.ts';
import { type AdminContext, defineSection } from './types.ts';

/** The live configuration: backend and mode per repository, schema version and pending migrations, database reachability. */

interface ConfigurationData {
  backend: 'json' | 'postgres';
  storageMode: string;
  repositories: Array<{ repository: string; mode: string; variable: string; overridden: boolean }>;
  database: { configured: boolean; reachable: boolean | null; address: string | null; latencyMs: number | null; error: string | null };
  schema: { current: number; latest: number; pending: string[]; problems: string[] } | null;
  auth: string;
  slowQueryMs: number;
}

async function collect(ctx: AdminContext): Promise<ConfigurationData> {
  const { config, db } = ctx;
  const data: ConfigurationData = {
    backend: ctx.store?.backend ?? (config.databaseUrl && config.storageMode !== 'json' ? 'postgres' : 'json'),
    storageMode: config.storageMode,
    repositories: REPOSITORIES.map((repository) => ({
      repository,
      mode: modeOf(config, repository),
      variable: repositoryModeVariable(repository),
      overridden: config.repositoryModes[repository] !== undefined,
    })),
    database: { configured: config.databaseUrl !== undefined, reachable: null, address: null, latencyMs: null, error: null },
    schema: null,
    auth: String(describeConfig(config).auth),
    slowQueryMs: config.slowQueryMs,
  };
  if (!db) {
    if (data.database.configured) {
      data.database.reachable = false;
      data.database.error = ctx.dbError ?? 'not connected: the store fell back to JSON files (ON_DB_UNAVAILABLE=fallback)';
    }
    return data;
  }
  data.database.address = db.displayUrl.replace(/^(postgres(ql)?:\/\/)[^@/]*@/i, '$1');
  const started = performance.now();
  try {
    await db.ping();
    data.database.reachable = true;
    data.database.latencyMs = Math.round((performance.now() - started) * 10) / 10;
    const status = await new Migrator(db.sql).status();
    data.schema = {
      current: status.current,
      latest: status.latest,
      pending: status.pending.map((m) => `${String(m.version).padStart(4, '0')} ${m.name}`),
      problems: status.problems,
    };
  } catch (error) {
    data.database.reachable = false;
    data.database.error = redactSecrets(error instanceof Error ? error.message : String(error));
  }
  return data;
}

function reachability(data: ConfigurationData) {
  const { database } = data;
  if (!database.configured) return badge('no database (JSON files)', 'muted');
  if (database.reachable === true) return badge(`reachable (${database.latencyMs} ms)`, 'ok');
  return badge(`unreachable: ${database.error ?? 'unknown'}`, 'bad');
}

function schemaLine(data: ConfigurationData): string {
  const { schema } = data;
  if (!schema) return '-';
  const state = schema.problems.length > 0 ? 'PROBLEMS' : schema.pending.length > 0 ? `${schema.pending.length} pending` : 'up to date';
  return `version ${schema.current} of ${schema.latest} (${state})`;
}

export const configurationSection = defineSection<ConfigurationData>({
  id: 'configuration',
  title: 'Configuration',
  collect,
  html: (data) => html`
    <dl class="facts">
      <dt>backend</dt><dd>${data.backend} (STORAGE_MODE=${data.storageMode})</dd>
      <dt>database</dt><dd>${reachability(data)} ${data.database.address ? html`<code>${data.database.address}</code>` : ''}</dd>
      <dt>schema</dt><dd>${schemaLine(data)}${data.schema?.pending.length ? html` — pending: ${data.schema.pending.join(', ')} (run <code>pgferry db up</code>)` : ''}</dd>
      <dt>auth</dt><dd>${data.auth}</dd>
      <dt>slow query</dt><dd>${data.slowQueryMs} ms</dd>
    </dl>
    ${table(
      ['repository', 'mode', 'set by'],
      data.repositories.map((r) => [r.repository, r.mode, r.overridden ? r.variable : 'STORAGE_MODE']),
    )}`,
  text: (data) => [
    `backend   ${data.backend} (STORAGE_MODE=${data.storageMode}); auth ${data.auth}`,
    `database  ${!data.database.configured ? 'none (JSON files)' : data.database.reachable ? `reachable (${data.database.latencyMs} ms) ${data.database.address}` : `UNREACHABLE: ${data.database.error}`}`,
    `schema    ${schemaLine(data)}${data.schema?.pending.length ? `; pending ${data.schema.pending.join(', ')}` : ''}`,
    `modes     ${data.repositories.map((r) => `${r.repository}=${r.mode}`).join(' ')}`,
  ],
});
