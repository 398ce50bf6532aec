import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { loadConfig } from '../../config.ts';
import { buildApp } from '../../http/app.ts';
import { assertAuthConfigured } from '../../http/auth.ts';
import { listen } from '../../http/server.ts';
import { openStore } from '../../store/open.ts';
import { action, EXIT, makeContext } from '../context.ts';

/**
 * `pgferry serve [--port 8080] [--host 127.0.0.1]`: the chat backend as a
 * REST API (docs/http-api.md). Storage comes from the environment like every
 * other command (DATABASE_URL / DATA_DIR / STORAGE_MODE); auth from
 * AUTH_JWT_SECRET or AUTH_JWKS_URL, or AUTH_MODE=dev for local development.
 */

interface ServeFlags {
  port?: number;
  host?: string;
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new InvalidArgumentError('expected an integer from 0 to 65535');
  return port;
}

export async function serve(flags: ServeFlags): Promise<number> {
  const base = loadConfig(process.env);
  const ctx = makeContext({
    http: { ...base.http, ...(flags.port !== undefined ? { port: flags.port } : {}), ...(flags.host ? { host: flags.host } : {}) },
  });
  const { config, logger } = ctx;
  // Refuse before opening anything: a server nobody can authenticate against is useless.
  assertAuthConfigured(config);

  const store = await openStore({ config, logger });
  let app: Awaited<ReturnType<typeof buildApp>>;
  try {
    app = await buildApp({ store, config, logger, ownsStore: true });
  } catch (error) {
    await store.close();
    throw error;
  }
  const server = await listen(app, { host: config.http.host, port: config.http.port, logger });
  logger.info(
    {
      url: server.url,
      backend: store.backend,
      mode: store.mode,
      auth: config.auth.mode === 'dev' ? 'dev (X-User-Id)' : config.auth.jwksUrl ? 'jwt (JWKS)' : 'jwt (HS256)',
      bodyLimitBytes: config.http.bodyLimitBytes,
      cors: config.http.corsOrigins === '*' || config.http.corsOrigins.length > 0 ? config.http.corsOrigins : 'off',
    },
    `pgferry serve: listening on ${server.url} (storage ${store.backend}, mode ${store.mode}); API docs at ${server.url}/docs`,
  );
  return EXIT.OK;
}

export function register(program: Command): void {
  program
    .command('serve')
    .description('Run the HTTP API (conversations, messages, quotas) on the configured store')
    .option('--port <n>', 'port to listen on (overrides PORT; default 8080)', parsePort)
    .option('--host <host>', 'address to listen on (overrides HOST; default 127.0.0.1)')
    .addHelpText(
      'after',
      `
Examples:
  AUTH_MODE=dev pgferry serve                      JSON files in ./data, X-User-Id trusted (local only)
  DATABASE_URL=postgres://… AUTH_JWT_SECRET=… pgferry serve --host 0.0.0.0 --port 8080
  AUTH_JWKS_URL=https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com \\
    AUTH_ISSUER=https://securetoken.google.com/<project> AUTH_AUDIENCE=<project> pgferry serve`,
    )
    .action(action(async (flags: ServeFlags) => serve(flags)));
}
