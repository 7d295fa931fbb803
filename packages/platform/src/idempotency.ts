import { createHash } from 'node:crypto';
import { z } from 'zod';
import { DomainError, ErrorCode } from './errors.js';

/**
 * A client-chosen idempotency key (e.g. a UUID made once per user action): 8 to 100 characters of
 * letters, digits, `_ - : .`. One rule for every mutation that takes one (payForOrder, placeOrder).
 * Keys are per customer: two customers may choose the same key independently.
 */
export const ZIdempotencyKey = z
  .string()
  .regex(/^[A-Za-z0-9_\-:.]{8,100}$/, 'must be 8 to 100 characters of letters, digits, _ - : or .');

/**
 * The fingerprint of a request, stored with its idempotency key: a repeat with the same key is the
 * same request when its fingerprint is the same. sha256 (hex) of the parts joined by newlines.
 */
export const requestFingerprint = (...parts: string[]): string =>
  createHash('sha256').update(parts.join('\n')).digest('hex');

/** The key was used before for a request with another fingerprint: refused, nothing is done. */
export const idempotencyKeyReused = (request: string) =>
  new DomainError(
    ErrorCode.IDEMPOTENCY_KEY_REUSED,
    `This idempotency key was used for a different ${request} request; choose a new key`,
    { field: 'idempotencyKey' },
  );
