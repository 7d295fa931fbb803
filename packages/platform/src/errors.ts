import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { unwrapResolverError } from '@apollo/server/errors';

/**
 * Every error a client can see carries one of these codes in `extensions.code`. Clients switch on the
 * code; the message is for humans.
 */
export const ErrorCode = {
  BAD_USER_INPUT: 'BAD_USER_INPUT',
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  CONFLICT: 'CONFLICT',
  INVALID_STATUS_TRANSITION: 'INVALID_STATUS_TRANSITION',
  EMAIL_TAKEN: 'EMAIL_TAKEN',
  INVALID_CREDENTIALS: 'INVALID_CREDENTIALS',
  MEAL_UNAVAILABLE: 'MEAL_UNAVAILABLE',
  ADDON_NOT_ON_MEAL: 'ADDON_NOT_ON_MEAL',
  QUANTITY_OUT_OF_RANGE: 'QUANTITY_OUT_OF_RANGE',
  ORDER_NOT_PAYABLE: 'ORDER_NOT_PAYABLE',
  IDEMPOTENCY_KEY_REUSED: 'IDEMPOTENCY_KEY_REUSED',
  UPSTREAM_UNAVAILABLE: 'UPSTREAM_UNAVAILABLE',
  UPSTREAM_TIMEOUT: 'UPSTREAM_TIMEOUT',
  RATE_LIMITED: 'RATE_LIMITED',
  QUERY_LIMIT_EXCEEDED: 'QUERY_LIMIT_EXCEEDED',
  PERSISTED_QUERY_NOT_IN_LIST: 'PERSISTED_QUERY_NOT_IN_LIST',
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** One map from code to HTTP status; `satisfies` makes the compiler insist every code has one. */
export const httpStatusOf = {
  BAD_USER_INPUT: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  INVALID_STATUS_TRANSITION: 409,
  EMAIL_TAKEN: 409,
  INVALID_CREDENTIALS: 401,
  MEAL_UNAVAILABLE: 422,
  ADDON_NOT_ON_MEAL: 422,
  QUANTITY_OUT_OF_RANGE: 422,
  ORDER_NOT_PAYABLE: 422,
  IDEMPOTENCY_KEY_REUSED: 422,
  UPSTREAM_UNAVAILABLE: 503,
  UPSTREAM_TIMEOUT: 504,
  RATE_LIMITED: 429,
  QUERY_LIMIT_EXCEEDED: 400,
  PERSISTED_QUERY_NOT_IN_LIST: 400,
  INTERNAL_SERVER_ERROR: 500,
} as const satisfies Record<ErrorCode, number>;

/**
 * An expected failure a domain rule raises (free of GraphQL). Resolvers let it through; the error
 * formatter turns it into a GraphQL error with `extensions.code`.
 */
export class DomainError extends Error {
  override name = 'DomainError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export const badInput = (message: string, details: Record<string, unknown> = {}) =>
  new DomainError(ErrorCode.BAD_USER_INPUT, message, details);
export const notFound = (what: string, id: string) =>
  new DomainError(ErrorCode.NOT_FOUND, `${what} ${id} was not found`, { id });
export const forbidden = (message = 'You are not allowed to do this') => new DomainError(ErrorCode.FORBIDDEN, message);
export const unauthenticated = (message = 'You must be logged in') =>
  new DomainError(ErrorCode.UNAUTHENTICATED, message);

/** Codes that graphql-js and Apollo Server raise for malformed requests; passed through as they are. */
const requestErrorCodes = new Set([
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'BAD_USER_INPUT',
  'BAD_REQUEST',
  'PERSISTED_QUERY_NOT_FOUND',
  'PERSISTED_QUERY_NOT_SUPPORTED',
  'OPERATION_RESOLUTION_FAILURE',
]);

/**
 * Apollo `formatError`: domain errors become coded GraphQL errors; anything unexpected is logged by the
 * caller and reaches the client as INTERNAL_SERVER_ERROR with no message detail and no stack trace.
 */
export function formatError(
  formatted: GraphQLFormattedError,
  error: unknown,
  onUnexpected?: (error: unknown) => void,
): GraphQLFormattedError {
  const original = unwrapResolverError(error);
  if (original instanceof DomainError) {
    return {
      message: original.message,
      locations: formatted.locations,
      path: formatted.path,
      extensions: { code: original.code, ...original.details },
    };
  }
  if (isDatabaseUnavailable(original)) {
    // The service's own database is away (a restart, a failover) or too busy: nothing was written, try again.
    return {
      message: 'The database is unavailable; try again shortly',
      locations: formatted.locations,
      path: formatted.path,
      extensions: { code: ErrorCode.UPSTREAM_UNAVAILABLE },
    };
  }
  const code = formatted.extensions?.code;
  // Apollo codes anything thrown INTERNAL_SERVER_ERROR: only a GraphQL error made so on purpose (a
  // subgraph's, relayed by the gateway) keeps its message; any other is logged and replaced below.
  const deliberate = code !== ErrorCode.INTERNAL_SERVER_ERROR || original instanceof GraphQLError;
  if (typeof code === 'string' && deliberate && (requestErrorCodes.has(code) || code in httpStatusOf)) {
    const { stacktrace: _stacktrace, ...extensions } = formatted.extensions ?? {};
    return { ...formatted, extensions };
  }
  if (original instanceof GraphQLError && original.extensions.code === undefined && !original.originalError) {
    // A plain GraphQLError from graphql-js itself (e.g. variable coercion): a client mistake.
    return { ...formatted, extensions: { code: ErrorCode.BAD_USER_INPUT } };
  }
  onUnexpected?.(original);
  return {
    message: 'Internal server error',
    locations: formatted.locations,
    path: formatted.path,
    extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR },
  };
}

/**
 * Prisma's codes for "cannot reach / lost the database server" (P1001 unreachable, P1017 closed, ...),
 * for a pool too busy to lend a connection in time (P2024), and for an interactive transaction that
 * could not start or ran out of time (P2028: rolled back, so nothing was written).
 */
const unavailablePrismaCodes = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P2028']);
/** The driver adapter's kinds and Postgres's SQLSTATEs for a server that is down, starting or shutting down. */
const unavailableKinds = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout']);
const unavailableSqlStates = new Set(['57P01', '57P02', '57P03', '08000', '08001', '08003', '08006']);

/**
 * Whether an error says the database could not be reached or dropped the connection. Read by shape
 * (Prisma's known-request errors carry `code` and `meta.driverAdapterError.cause`), so this package
 * needs none of the services' generated Prisma error classes.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const { code, meta } = error as {
    code?: unknown;
    meta?: { driverAdapterError?: { cause?: Record<string, unknown> } };
  };
  if (typeof code === 'string' && (unavailablePrismaCodes.has(code) || unavailableSqlStates.has(code))) return true;
  const cause = meta?.driverAdapterError?.cause;
  if (cause && (unavailableKinds.has(String(cause.kind)) || unavailableSqlStates.has(String(cause.originalCode)))) {
    return true;
  }
  return /Connection terminated|ECONNREFUSED|ECONNRESET|Can't reach database server/.test(error.message);
}
