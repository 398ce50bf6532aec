import type { IncomingHttpHeaders } from 'node:http';
import { createRemoteJWKSet, decodeProtectedHeader, type JWTPayload, type JWTVerifyOptions, jwtVerify } from 'jose';
import type { Config } from '../config.ts';
import { isValidUserId } from '../domain/ids.ts';
import { PgFerryError } from '../errors.ts';
import type { Logger } from '../log.ts';

/**
 * Who is calling. Bearer JWTs are verified with AUTH_JWT_SECRET (HS256) or
 * the key set at AUTH_JWKS_URL (RS256/ES256 and kin, e.g. Firebase, Auth0);
 * the user id is the token's `sub`. `AUTH_MODE=dev` trusts an `X-User-Id`
 * header instead (and `X-User-Role` for the admin role) — for local
 * development only; config refuses it when NODE_ENV=production.
 */

export interface Principal {
  userId: string;
  admin: boolean;
  via: 'jwt' | 'dev';
  /** OAuth-style scopes: the token's `scope` (space-separated) or `scp` (list); `X-User-Scopes` in dev mode. */
  scopes?: readonly string[];
}

/** The scope a report worker's token carries to move any job through its states (seed 002). */
export const JOBS_WRITE_SCOPE = 'jobs:write';

/** A token's scopes: `scope` as a space-separated string (RFC 8693) or `scp` as a list (Azure, Okta). */
function scopesOf(payload: JWTPayload): string[] {
  if (typeof payload.scope === 'string') return payload.scope.split(' ').filter(Boolean);
  if (Array.isArray(payload.scp)) return payload.scp.filter((s): s is string => typeof s === 'string');
  return [];
}

export interface Authenticator {
  readonly mode: Config['auth']['mode'];
  authenticate(headers: IncomingHttpHeaders): Promise<Principal>;
}

/** Asymmetric algorithms accepted from a JWKS. `none` and HMAC are never accepted from it. */
export const JWKS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
const MAX_TOKEN_LENGTH = 16 * 1024;
const CLOCK_TOLERANCE_SECONDS = 5;

const unauthorized = (message: string) => new PgFerryError('UNAUTHORIZED', message);

/** Refuses to serve without a way to verify tokens (DESIGN section 2). */
export function assertAuthConfigured(config: Config): void {
  const { auth } = config;
  if (auth.mode === 'dev') {
    if (config.nodeEnv === 'production') {
      throw new PgFerryError('CONFIG_ERROR', 'AUTH_MODE: expected "jwt" when NODE_ENV=production (dev mode trusts X-User-Id), got "dev"', {
        variable: 'AUTH_MODE',
      });
    }
    return;
  }
  if (!auth.jwtSecret && !auth.jwksUrl) {
    throw new PgFerryError(
      'CONFIG_ERROR',
      'AUTH_JWT_SECRET or AUTH_JWKS_URL: one is required to serve (or AUTH_MODE=dev for local development), got neither',
      { variable: 'AUTH_JWT_SECRET' },
    );
  }
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? undefined : value;
}

function isAdmin(payload: JWTPayload, claim: string, value: string): boolean {
  const actual = payload[claim];
  if (typeof actual === 'string') return actual === value;
  return Array.isArray(actual) && actual.includes(value);
}

const JOSE_REASONS: Record<string, string> = {
  ERR_JWT_EXPIRED: 'the token has expired',
  ERR_JWS_SIGNATURE_VERIFICATION_FAILED: 'the token signature is not valid',
  ERR_JOSE_ALG_NOT_ALLOWED: 'the token algorithm is not accepted',
  ERR_JWT_CLAIM_VALIDATION_FAILED: 'a token claim is not valid',
  ERR_JWKS_NO_MATCHING_KEY: 'no key of the key set matches the token',
  ERR_JWKS_MULTIPLE_MATCHING_KEYS: 'several keys of the key set match the token',
  ERR_JWS_INVALID: 'the token is malformed',
  ERR_JWT_INVALID: 'the token is malformed',
  ERR_JOSE_NOT_SUPPORTED: 'the token uses an unsupported algorithm or key',
};

/** A jose failure → 401, or 503 when the key set could not be fetched (the provider, not the token, is at fault). */
function translateVerifyError(error: unknown): PgFerryError {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && code in JOSE_REASONS) {
    const claim = (error as { claim?: unknown }).claim;
    const reason = JOSE_REASONS[code]!;
    return unauthorized(code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && typeof claim === 'string' ? `${reason} (${claim})` : reason);
  }
  // ERR_JWKS_TIMEOUT, ERR_JWKS_INVALID, a non-200 answer or a network error while fetching the key set.
  return new PgFerryError('UNAVAILABLE', 'the key set at AUTH_JWKS_URL could not be fetched', undefined, { cause: error });
}

export interface AuthenticatorOptions {
  logger: Logger;
  /** JWKS fetch timeout in ms (default 5000). */
  jwksTimeoutMs?: number;
}

export function createAuthenticator(config: Config, options: AuthenticatorOptions): Authenticator {
  assertAuthConfigured(config);
  const { auth } = config;
  const secret = auth.jwtSecret ? new TextEncoder().encode(auth.jwtSecret) : undefined;
  if (secret && secret.length < 32) {
    options.logger.warn('AUTH_JWT_SECRET is shorter than 32 bytes: use a longer random secret for HS256');
  }
  const jwks = auth.jwksUrl
    ? createRemoteJWKSet(new URL(auth.jwksUrl), { timeoutDuration: options.jwksTimeoutMs ?? 5000, cooldownDuration: 30_000 })
    : undefined;
  // A token without `exp` never expires: a leaked one would work forever, so it is refused unless AUTH_REQUIRE_EXP=false.
  const requiredClaims = auth.requireExp ? ['sub', 'exp'] : ['sub'];
  const claimsOptions: JWTVerifyOptions = { clockTolerance: CLOCK_TOLERANCE_SECONDS, requiredClaims };
  if (auth.issuer) claimsOptions.issuer = auth.issuer;
  if (auth.audience) claimsOptions.audience = auth.audience;

  async function verifyToken(token: string): Promise<Principal> {
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw unauthorized('the token is malformed');
    }
    let payload: JWTPayload;
    try {
      if (alg === 'HS256' && secret) {
        ({ payload } = await jwtVerify(token, secret, { ...claimsOptions, algorithms: ['HS256'] }));
      } else if (alg !== undefined && jwks && JWKS_ALGORITHMS.includes(alg)) {
        ({ payload } = await jwtVerify(token, jwks, { ...claimsOptions, algorithms: JWKS_ALGORITHMS }));
      } else {
        throw unauthorized(`the token algorithm ${JSON.stringify(String(alg).slice(0, 16))} is not accepted`);
      }
    } catch (error) {
      if (error instanceof PgFerryError) throw error;
      throw translateVerifyError(error);
    }
    if (!isValidUserId(payload.sub)) throw unauthorized('the token subject (sub) is not a valid user id');
    return { userId: payload.sub, admin: isAdmin(payload, auth.adminClaim, auth.adminValue), via: 'jwt', scopes: scopesOf(payload) };
  }

  const canVerify = secret !== undefined || jwks !== undefined;

  return {
    mode: auth.mode,
    async authenticate(headers) {
      const authorization = headerValue(headers, 'authorization');
      if (authorization !== undefined && (auth.mode === 'jwt' || canVerify)) {
        const match = /^Bearer +([A-Za-z0-9._~+/=-]+) *$/i.exec(authorization);
        if (!match || match[1]!.length > MAX_TOKEN_LENGTH) throw unauthorized('expected "Authorization: Bearer <token>"');
        return verifyToken(match[1]!);
      }
      if (auth.mode === 'jwt') throw unauthorized('missing bearer token: send "Authorization: Bearer <token>"');
      const userId = headerValue(headers, 'x-user-id');
      if (userId === undefined) throw unauthorized('missing X-User-Id header (AUTH_MODE=dev)');
      if (!isValidUserId(userId)) throw unauthorized('X-User-Id is not a valid user id');
      const scopes = (headerValue(headers, 'x-user-scopes') ?? '').split(' ').filter(Boolean);
      return { userId, admin: headerValue(headers, 'x-user-role') === auth.adminValue, via: 'dev', scopes };
    },
  };
}
