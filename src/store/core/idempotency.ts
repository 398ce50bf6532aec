import { PgFerryError } from '../../errors.ts';

/** The refusals of IdempotencyRepository.run, the same on every backend. */

export const keyInFlight = (): PgFerryError =>
  new PgFerryError('CONFLICT', 'a request with this Idempotency-Key is still in progress; retry after it has finished');

export const keyUsedForAnotherRequest = (): PgFerryError =>
  new PgFerryError(
    'UNPROCESSABLE',
    'this Idempotency-Key was already used with another request (method, path or body); use a new key for a new request',
  );
