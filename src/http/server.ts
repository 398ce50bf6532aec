import type { Logger } from '../log.ts';
import type { App } from './app.ts';

/**
 * Listening and graceful shutdown; the app itself is built by app.ts.
 * On SIGTERM/SIGINT: stop accepting connections (new requests on open
 * keep-alive connections get 503), let in-flight requests finish within
 * `shutdownTimeoutMs`, then cut the remaining connections; the app's onClose
 * hooks close the store.
 */

export interface ListenOptions {
  host: string;
  port: number;
  logger: Logger;
  /** Bound on waiting for in-flight requests (default 10 s). */
  shutdownTimeoutMs?: number;
  /** Signals that start the shutdown (default SIGTERM and SIGINT); [] installs none. */
  signals?: NodeJS.Signals[];
}

export interface RunningServer {
  /** e.g. http://127.0.0.1:8080 */
  url: string;
  port: number;
  /** Graceful shutdown; safe to call more than once. */
  close(): Promise<void>;
}

export async function listen(app: App, options: ListenOptions): Promise<RunningServer> {
  const timeoutMs = options.shutdownTimeoutMs ?? 10_000;
  const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      for (const signal of signals) process.off(signal, onSignal);
      const started = Date.now();
      const force = setTimeout(() => {
        options.logger.warn({ timeoutMs }, 'shutdown: in-flight requests did not finish in time; closing their connections');
        app.server.closeAllConnections();
      }, timeoutMs);
      force.unref();
      // A keep-alive connection whose request just finished would otherwise hold the close open until it times out.
      const sweep = setInterval(() => app.server.closeIdleConnections(), 100);
      sweep.unref();
      try {
        await app.close();
      } finally {
        clearTimeout(force);
        clearInterval(sweep);
      }
      options.logger.info({ ms: Date.now() - started }, 'shutdown complete');
    })();
    return closing;
  };

  function onSignal(signal: NodeJS.Signals): void {
    if (closing) {
      options.logger.warn({ signal }, 'second signal during shutdown: exiting now');
      process.exit(1);
    }
    options.logger.info({ signal, timeoutMs }, 'shutdown: no longer accepting connections, finishing in-flight requests');
    close().then(
      () => {
        process.exitCode ??= 0;
      },
      (error: unknown) => {
        options.logger.error({ err: error }, 'shutdown failed');
        process.exitCode = 1;
      },
    );
  }
  for (const signal of signals) process.on(signal, onSignal);

  return { url: `http://${host}:${port}`, port, close };
}
