/**
 * Every error pgferry raises to a caller carries a stable `code`. The table
 * below is the single source of truth for codes and their HTTP status; the
 * docs (docs/errors.md) list the same table and a test checks they agree.
 */
export const ERROR_CODES = {
  INVALID_INPUT: { status: 400, description: 'A parameter or body failed validation (bad ID, wrong type, out of range).' },
  UNAUTHORIZED: { status: 401, description: 'Missing, malformed, expired or forged credentials.' },
  FORBIDDEN: { status: 403, description: 'Authenticated, but the route needs a role the caller does not have.' },
  NOT_FOUND: { status: 404, description: 'No such record for this user (another user\'s record is also "not found").' },
  CONFLICT: { status: 409, description: 'The record already exists or was changed concurrently.' },
  PAYLOAD_TOO_LARGE: { status: 413, description: 'The request body or upload exceeds the configured limit.' },
  REQUEST_TIMEOUT: { status: 408, description: 'The request did not arrive completely within the server timeout.' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, description: 'The request content type is not accepted.' },
  UNPROCESSABLE: { status: 422, description: 'Well-formed input that breaks a business rule (e.g. unknown tier).' },
  HEADERS_TOO_LARGE: { status: 431, description: 'The request headers exceed the server limit.' },
  QUOTA_EXCEEDED: { status: 429, description: "The user's daily or monthly query limit is reached." },
  CORRUPT_DATA: { status: 500, description: 'A stored file could not be parsed; the file is named in the server log.' },
  INTERNAL: { status: 500, description: 'An unexpected error; details are in the server log only.' },
  UNAVAILABLE: { status: 503, description: 'The database is unreachable; retry after the indicated delay.' },
  CONFIG_ERROR: { status: 500, description: 'The configuration is invalid (CLI exit code 2).' },
  MIGRATION_ERROR: {
    status: 500,
    description: 'The schema cannot be migrated safely (changed file, database ahead of code, failed step).',
  },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class PgFerryError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PgFerryError';
    this.code = code;
    this.details = details;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }
}

export const notFound = (what: string, id: string) => new PgFerryError('NOT_FOUND', `${what} ${JSON.stringify(id)} not found`);

export const invalidInput = (message: string, details?: Record<string, unknown>) => new PgFerryError('INVALID_INPUT', message, details);

export function isPgFerryError(error: unknown, code?: ErrorCode): error is PgFerryError {
  return error instanceof PgFerryError && (code === undefined || error.code === code);
}
