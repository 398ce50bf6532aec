import path from 'node:path';
import { z } from 'zod';
import { PgFerryError } from './errors.ts';

/**
 * Environment → typed configuration (DESIGN section 2). Every error names the
 * variable and what is accepted. Flags override the environment: the CLI
 * passes them in as `overrides`.
 */

export const STORAGE_MODES = ['json', 'dual', 'postgres-fallback', 'postgres'] as const;
export type StorageMode = (typeof STORAGE_MODES)[number];

/**
 * The Store's repositories. Each can run in its own storage mode
 * (`STORAGE_<NAME>`, e.g. `STORAGE_JOBS=json`: seed 002's hybrid option);
 * one not named follows `STORAGE_MODE`.
 */
export const REPOSITORIES = ['conversations', 'usage', 'submissions', 'jobs', 'uploadedFiles', 'audit', 'uploads'] as const;
export type RepositoryName = (typeof REPOSITORIES)[number];

/** `uploadedFiles` → `STORAGE_UPLOADED_FILES`. */
export function repositoryModeVariable(repository: RepositoryName): string {
  return `STORAGE_${repository.replace(/[A-Z]/g, (letter) => `_${letter}`).toUpperCase()}`;
}

/** The mode one repository runs in. */
export function modeOf(config: Config, repository: RepositoryName): StorageMode {
  return config.repositoryModes[repository] ?? config.storageMode;
}

export const TIERS = ['free', 'pro', 'enterprise'] as const;
export type Tier = (typeof TIERS)[number];

/** `null` means unlimited. */
export interface TierLimit {
  daily: number | null;
  monthly: number | null;
}
export type TierLimits = Record<Tier, TierLimit>;

export const DEFAULT_TIER_LIMITS: TierLimits = {
  free: { daily: 10, monthly: 100 },
  pro: { daily: 100, monthly: 3000 },
  enterprise: { daily: null, monthly: null },
};

export interface Config {
  nodeEnv: string;
  /** A postgres:// URL, `embedded`, or undefined (JSON backend). */
  databaseUrl: string | undefined;
  dataDir: string;
  storageMode: StorageMode;
  /** Per-repository overrides of `storageMode` (STORAGE_<NAME>); see `modeOf`. */
  repositoryModes: Partial<Record<RepositoryName, StorageMode>>;
  onDbUnavailable: 'fail' | 'fallback';
  /** Share of reads (0..1) that dual / postgres-fallback also run on the other store and compare (SHADOW_READ_RATE). */
  shadowReadRate: number;
  autoMigrate: boolean;
  pool: { max: number; idleSeconds: number; connectTimeoutSeconds: number };
  statementTimeoutMs: number;
  slowQueryMs: number;
  logLevel: string;
  tierLimits: TierLimits;
  auth: {
    mode: 'jwt' | 'dev';
    jwtSecret: string | undefined;
    jwksUrl: string | undefined;
    issuer: string | undefined;
    audience: string | undefined;
    adminClaim: string;
    adminValue: string;
    /** Refuse tokens without an `exp` claim (AUTH_REQUIRE_EXP, default true): such a token would be valid forever. */
    requireExp: boolean;
  };
  s3: {
    bucket: string | undefined;
    region: string | undefined;
    accessKeyId: string | undefined;
    secretAccessKey: string | undefined;
    endpoint: string | undefined;
  };
  http: {
    host: string;
    port: number;
    bodyLimitBytes: number;
    /** Origins allowed to call the API from a browser (CORS): `*`, a list, or none (CORS off). */
    corsOrigins: '*' | string[];
  };
  uploadsStorePath: string | undefined;
  /** POST /v1/uploads: largest file (UPLOAD_MAX_BYTES) and accepted content types (UPLOAD_CONTENT_TYPES, comma-separated). */
  uploads: { maxBytes: number; contentTypes: string[] };
  /** A bearer token that may read /metrics without the admin role (METRICS_TOKEN, 16+ characters); unset: admin only. */
  metricsToken: string | undefined;
}

/** Documents and images the seed apps take; anything else is 415 unless UPLOAD_CONTENT_TYPES says otherwise. */
export const DEFAULT_UPLOAD_CONTENT_TYPES = [
  'application/pdf',
  'application/msword',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  'application/vnd.ms-excel',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  'text/plain',
  'text/csv',
  'application/json',
  'image/png',
  'image/jpeg',
  'image/gif',
  'image/webp',
];

/** `UPLOAD_CONTENT_TYPES`: comma-separated `type/subtype` values, lower-cased; unset means the defaults. */
export function parseUploadContentTypes(raw: string | undefined): string[] {
  if (raw === undefined || raw.trim() === '') return [...DEFAULT_UPLOAD_CONTENT_TYPES];
  const types = raw
    .split(',')
    .map((part) => part.trim().toLowerCase())
    .filter(Boolean);
  for (const type of types) {
    if (!/^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/.test(type)) {
      fail('UPLOAD_CONTENT_TYPES', 'comma-separated media types such as application/pdf,image/png', raw);
    }
  }
  return types;
}

export type Env = Record<string, string | undefined>;

function fail(variable: string, accepted: string, got: string | undefined): never {
  const shown = got === undefined ? 'nothing' : JSON.stringify(got.length > 80 ? `${got.slice(0, 80)}…` : got);
  throw new PgFerryError('CONFIG_ERROR', `${variable}: expected ${accepted}, got ${shown}`, { variable });
}

function readEnum<T extends string>(env: Env, name: string, values: readonly T[], fallback: T): T {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!(values as readonly string[]).includes(raw)) fail(name, `one of ${values.join(', ')}`, raw);
  return raw as T;
}

function readInt(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) fail(name, `an integer from ${min} to ${max}`, raw);
  return value;
}

function readRate(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || value > 1) fail(name, 'a number from 0 to 1 (e.g. 0.01 for 1% of reads)', raw);
  return value;
}

function readBool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  return fail(name, 'true or false', raw);
}

function readDatabaseUrl(env: Env): string | undefined {
  const raw = env.DATABASE_URL;
  if (raw === undefined || raw === '') return undefined;
  if (raw === 'embedded') return raw;
  if (!/^postgres(ql)?:\/\//i.test(raw)) fail('DATABASE_URL', 'a postgres:// or postgresql:// URL, or "embedded"', '<redacted>');
  try {
    new URL(raw);
  } catch {
    fail('DATABASE_URL', 'a valid URL', '<redacted>');
  }
  return raw;
}

/**
 * `CORS_ORIGINS`: `*`, or comma-separated origins such as
 * `https://app.example.com,http://localhost:5173`; unset means CORS is off.
 * Each origin is normalised the way browsers send it (lower-case host, no
 * default port, no trailing slash) so a listed origin always matches.
 */
export function parseCorsOrigins(raw: string | undefined): '*' | string[] {
  if (raw === undefined || raw.trim() === '') return [];
  if (raw.trim() === '*') return '*';
  const accepted =
    '"*" or comma-separated origins such as https://app.example.com,http://localhost:5173 (scheme, host, optional port; no path)';
  const origins = raw
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean);
  return [
    ...new Set(
      origins.map((origin) => {
        let url: URL;
        try {
          url = new URL(origin);
        } catch {
          return fail('CORS_ORIGINS', accepted, origin);
        }
        const bare = url.pathname === '/' && !url.search && !url.hash && !url.username && !url.password;
        if (!/^https?:$/.test(url.protocol) || !bare || !/^https?:\/\//i.test(origin)) fail('CORS_ORIGINS', accepted, origin);
        return url.origin;
      }),
    ),
  ];
}

const limitValue = z.union([z.number().int().nonnegative(), z.null()]);
const tierLimitsSchema = z
  .object(Object.fromEntries(TIERS.map((tier) => [tier, z.object({ daily: limitValue, monthly: limitValue }).partial()])))
  .partial()
  .strict();

export function parseTierLimits(raw: string | undefined): TierLimits {
  if (raw === undefined || raw === '') return structuredClone(DEFAULT_TIER_LIMITS);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return fail('TIER_LIMITS', 'JSON such as {"free":{"daily":10,"monthly":100}}', raw);
  }
  const result = tierLimitsSchema.safeParse(parsed);
  if (!result.success) {
    return fail('TIER_LIMITS', `an object keyed by ${TIERS.join('/')} with daily/monthly integers >= 0 or null`, raw);
  }
  const limits = structuredClone(DEFAULT_TIER_LIMITS);
  for (const tier of TIERS) {
    const given = (result.data as Partial<Record<Tier, Partial<TierLimit>>>)[tier];
    if (given) limits[tier] = { ...limits[tier], ...given };
  }
  return limits;
}

export function loadConfig(env: Env = process.env, overrides: Partial<Config> = {}): Config {
  const nodeEnv = env.NODE_ENV ?? 'development';
  const production = nodeEnv === 'production';
  const databaseUrl = overrides.databaseUrl ?? readDatabaseUrl(env);
  const authMode = readEnum(env, 'AUTH_MODE', ['jwt', 'dev'] as const, 'jwt');
  if (authMode === 'dev' && production) fail('AUTH_MODE', '"jwt" when NODE_ENV=production (dev mode trusts X-User-Id)', 'dev');
  const jwksUrl = env.AUTH_JWKS_URL || undefined;
  if (jwksUrl && !/^https?:\/\//.test(jwksUrl)) fail('AUTH_JWKS_URL', 'an http(s) URL', jwksUrl);

  const config: Config = {
    nodeEnv,
    databaseUrl,
    dataDir: path.resolve(env.DATA_DIR || './data'),
    storageMode: readEnum(env, 'STORAGE_MODE', STORAGE_MODES, databaseUrl ? 'postgres' : 'json'),
    repositoryModes: readRepositoryModes(env),
    onDbUnavailable: readEnum(env, 'ON_DB_UNAVAILABLE', ['fail', 'fallback'] as const, production ? 'fail' : 'fallback'),
    shadowReadRate: readRate(env, 'SHADOW_READ_RATE', 0),
    autoMigrate: readBool(env, 'AUTO_MIGRATE', true),
    pool: {
      max: readInt(env, 'DB_POOL_MAX', 15, 1, 1000),
      idleSeconds: readInt(env, 'DB_POOL_IDLE_S', 30, 0, 86_400),
      connectTimeoutSeconds: readInt(env, 'DB_CONNECT_TIMEOUT_S', 10, 1, 600),
    },
    statementTimeoutMs: readInt(env, 'DB_STATEMENT_TIMEOUT_MS', 30_000, 0, 86_400_000),
    slowQueryMs: readInt(env, 'SLOW_QUERY_MS', 1000, 0, 3_600_000),
    logLevel: readEnum(env, 'LOG_LEVEL', ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const, 'info'),
    tierLimits: parseTierLimits(env.TIER_LIMITS),
    auth: {
      mode: authMode,
      jwtSecret: env.AUTH_JWT_SECRET || undefined,
      jwksUrl,
      issuer: env.AUTH_ISSUER || undefined,
      audience: env.AUTH_AUDIENCE || undefined,
      adminClaim: env.AUTH_ADMIN_CLAIM || 'role',
      adminValue: env.AUTH_ADMIN_VALUE || 'admin',
      requireExp: readBool(env, 'AUTH_REQUIRE_EXP', true),
    },
    s3: {
      bucket: env.S3_BUCKET_NAME || undefined,
      region: env.AWS_REGION || undefined,
      accessKeyId: env.AWS_ACCESS_KEY_ID || undefined,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY || undefined,
      endpoint: env.S3_ENDPOINT || undefined,
    },
    http: {
      host: env.HOST || '127.0.0.1',
      port: readInt(env, 'PORT', 8080, 0, 65_535),
      bodyLimitBytes: readInt(env, 'BODY_LIMIT_BYTES', 1_048_576, 1024, 1_073_741_824),
      corsOrigins: parseCorsOrigins(env.CORS_ORIGINS),
    },
    uploadsStorePath: env.USER_UPLOADS_STORE || undefined,
    uploads: {
      maxBytes: readInt(env, 'UPLOAD_MAX_BYTES', 25 * 1024 * 1024, 1, 5 * 1024 ** 4),
      contentTypes: parseUploadContentTypes(env.UPLOAD_CONTENT_TYPES),
    },
    metricsToken: readMetricsToken(env),
    ...overrides,
  };

  if (config.storageMode !== 'json' && !config.databaseUrl) {
    fail('STORAGE_MODE', `"json" unless DATABASE_URL is set (mode ${config.storageMode} needs PostgreSQL)`, config.storageMode);
  }
  for (const repository of REPOSITORIES) {
    const mode = config.repositoryModes[repository];
    if (mode && mode !== 'json' && !config.databaseUrl) {
      fail(repositoryModeVariable(repository), `"json" unless DATABASE_URL is set (mode ${mode} needs PostgreSQL)`, mode);
    }
  }
  return config;
}

function readMetricsToken(env: Env): string | undefined {
  const raw = env.METRICS_TOKEN;
  if (raw === undefined || raw === '') return undefined;
  if (raw.length < 16 || !/^[A-Za-z0-9._~+/=-]+$/.test(raw))
    fail('METRICS_TOKEN', 'a random token of 16+ letters, digits or ._~+/=-', '<redacted>');
  return raw;
}

function readRepositoryModes(env: Env): Partial<Record<RepositoryName, StorageMode>> {
  const modes: Partial<Record<RepositoryName, StorageMode>> = {};
  for (const repository of REPOSITORIES) {
    const variable = repositoryModeVariable(repository);
    if (env[variable]) modes[repository] = readEnum(env, variable, STORAGE_MODES, 'json');
  }
  return modes;
}

/** The parts of the config that are safe to print (doctor, startup log). */
export function describeConfig(config: Config): Record<string, unknown> {
  return {
    nodeEnv: config.nodeEnv,
    database: config.databaseUrl === undefined ? '(none: JSON backend)' : config.databaseUrl === 'embedded' ? 'embedded' : '(set)',
    dataDir: config.dataDir,
    storageMode: config.storageMode,
    repositoryModes: config.repositoryModes,
    onDbUnavailable: config.onDbUnavailable,
    shadowReadRate: config.shadowReadRate,
    autoMigrate: config.autoMigrate,
    pool: config.pool,
    statementTimeoutMs: config.statementTimeoutMs,
    slowQueryMs: config.slowQueryMs,
    auth:
      config.auth.mode === 'dev'
        ? 'dev (X-User-Id header)'
        : config.auth.jwksUrl
          ? 'jwt (JWKS)'
          : config.auth.jwtSecret
            ? 'jwt (HS256 secret)'
            : 'jwt (not configured)',
    objectStorage: config.s3.bucket ? `s3 (${config.s3.bucket})` : 'local files',
    cors: describeCors(config.http.corsOrigins),
    metrics: config.metricsToken ? 'METRICS_TOKEN or the admin role' : 'the admin role',
  };
}

function describeCors(origins: Config['http']['corsOrigins']): string {
  if (origins === '*') return 'any origin (*)';
  return origins.length === 0 ? 'off' : origins.join(', ');
}
