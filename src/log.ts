import { type Logger, pino } from 'pino';

export type { Logger };

/**
 * Secrets must never reach a log line or an error message (brief, rule 6).
 * `redactSecrets` is applied to free text: connection-string passwords, bearer
 * tokens and AWS keys are replaced. Structured fields are covered by pino's
 * `redact` paths below.
 */
const SECRET_PATTERNS: Array<[RegExp, string]> = [
  // scheme://user:password@host  →  scheme://user:***@host
  [/\b([a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*):([^@/\s]*)@/gi, '$1:***@'],
  // password=... in key/value connection strings
  [/\b(password|passwd|pwd)=([^\s&;]+)/gi, '$1=***'],
  [/\b(Bearer)\s+[A-Za-z0-9._~+/=-]+/g, '$1 ***'],
  [/\b(AKIA|ASIA)[A-Z0-9]{16}\b/g, '$1****************'],
  [/\b(aws_secret_access_key|secretAccessKey|AWS_SECRET_ACCESS_KEY)(["']?\s*[:=]\s*["']?)[^"'\s,}]+/g, '$1$2***'],
];

export function redactSecrets(text: string): string {
  let out = text;
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

/** A connection string safe to print: the password (if any) replaced by `***`. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    for (const key of [...parsed.searchParams.keys()]) {
      if (/pass|secret|token|key/i.test(key)) parsed.searchParams.set(key, '***');
    }
    return parsed.toString();
  } catch {
    return redactSecrets(url);
  }
}

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  '*.password',
  '*.secretAccessKey',
  '*.accessKeyId',
  '*.databaseUrl',
  '*.token',
];

export interface LoggerOptions {
  level?: string;
  name?: string;
  /** Write to this destination instead of stderr (tests capture logs this way); always JSON lines. */
  destination?: NodeJS.WritableStream;
  /** stderr's format: `human` lines or `json` (default: LOG_FORMAT, else human on a terminal and JSON otherwise). */
  format?: LogFormat;
}

export const LOG_FORMATS = ['human', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** LOG_FORMAT (set by `--log-format`), else human when stderr is a terminal: a person reads it; a pipe or a file gets JSON. */
export function logFormat(env: Record<string, string | undefined> = process.env): LogFormat {
  const given = env.LOG_FORMAT;
  if (given === 'human' || given === 'json') return given;
  return process.stderr.isTTY ? 'human' : 'json';
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** One pino JSON line as a line for a person: `12:03:04 WARN  message  key=value …`. */
export function humanLogLine(json: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const { level, time, msg, pid: _pid, hostname: _hostname, name: _name, ...fields } = entry;
  const clock = typeof time === 'number' ? new Date(time).toISOString().slice(11, 19) : '--:--:--';
  const shown = Object.entries(fields)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ');
  return `${clock} ${(LEVEL_NAMES[level as number] ?? String(level)).padEnd(5)} ${String(msg ?? '')}${shown ? `  ${shown}` : ''}\n`;
}

function humanDestination(): pino.DestinationStream {
  return {
    write(line: string) {
      process.stderr.write(humanLogLine(line));
    },
  };
}

/**
 * pino logger writing JSON lines to stderr (stdout stays free for command
 * output). Every message and error string passes through `redactSecrets`.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const destination =
    options.destination ?? ((options.format ?? logFormat()) === 'human' ? humanDestination() : pino.destination({ fd: 2, sync: true }));
  return pino(
    {
      name: options.name ?? 'pgferry',
      level: options.level ?? process.env.LOG_LEVEL ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '***' },
      hooks: {
        logMethod(args, method) {
          const cleaned = args.map((arg) => (typeof arg === 'string' ? redactSecrets(arg) : arg));
          method.apply(this, cleaned as Parameters<typeof method>);
        },
      },
      serializers: {
        err: (error: unknown) => serializeError(error),
        error: (error: unknown) => serializeError(error),
      },
    },
    destination as pino.DestinationStream,
  );
}

/** Error → plain object with message/code, secrets redacted, no stack unless debug. */
export function serializeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: redactSecrets(String(error)) };
  const out: Record<string, unknown> = { type: error.name, message: redactSecrets(error.message) };
  const code = (error as { code?: unknown }).code;
  if (code !== undefined) out.code = code;
  if (process.env.LOG_LEVEL === 'debug' || process.env.LOG_LEVEL === 'trace') {
    out.stack = redactSecrets(error.stack ?? '');
  }
  return out;
}

/** A logger that discards everything; handy default for library use in tests. */
export const silentLogger: Logger = pino({ level: 'silent' });
