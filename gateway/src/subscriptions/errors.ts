import { httpStatusOf } from '@food/platform';
import { GraphQLError } from '../graphql-js.js';

/**
 * The codes (`extensions.code`) a subscription can be refused or ended with, besides the ones the
 * orders subgraph answers with (NOT_FOUND, BAD_USER_INPUT, ...), which are passed through.
 */
export const SubscriptionErrorCode = {
  GRAPHQL_PARSE_FAILED: 'GRAPHQL_PARSE_FAILED',
  GRAPHQL_VALIDATION_FAILED: 'GRAPHQL_VALIDATION_FAILED',
  BAD_REQUEST: 'BAD_REQUEST',
  BAD_USER_INPUT: 'BAD_USER_INPUT',
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  /**
   * The graphql-ws connection, or the client address over SSE and multipart HTTP, already holds the
   * maximum number of subscriptions.
   */
  TOO_MANY_SUBSCRIPTIONS: 'TOO_MANY_SUBSCRIPTIONS',
  /** This gateway has no event bus, or is shutting down. */
  SUBSCRIPTIONS_UNAVAILABLE: 'SUBSCRIPTIONS_UNAVAILABLE',
  /** The event bus could not be reached. */
  UPSTREAM_UNAVAILABLE: 'UPSTREAM_UNAVAILABLE',
  /** The subscriber fell too far behind the events; it should subscribe again. */
  SUBSCRIPTION_OVERFLOW: 'SUBSCRIPTION_OVERFLOW',
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
} as const;
export type SubscriptionErrorCode = (typeof SubscriptionErrorCode)[keyof typeof SubscriptionErrorCode];

/** What a client gets when it sends a subscription as a plain JSON request, which cannot stream. */
export const SUBSCRIPTIONS_OVER_PLAIN_HTTP =
  'subscriptions are served on /graphql over WebSockets (graphql-ws), Server-Sent Events ' +
  '(Accept: text/event-stream) or multipart HTTP (Accept: multipart/mixed;subscriptionSpec="1.0")';

/**
 * The HTTP status of a subscription refused before its stream began (SSE, multipart HTTP), by code;
 * `satisfies` makes the compiler insist every code has one.
 */
const refusalStatusOf = {
  GRAPHQL_PARSE_FAILED: 400,
  GRAPHQL_VALIDATION_FAILED: 400,
  BAD_REQUEST: 400,
  BAD_USER_INPUT: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  TOO_MANY_SUBSCRIPTIONS: 429,
  SUBSCRIPTIONS_UNAVAILABLE: 503,
  UPSTREAM_UNAVAILABLE: 503,
  // Never a refusal (a stream ends with it); here for completeness.
  SUBSCRIPTION_OVERFLOW: 503,
  INTERNAL_SERVER_ERROR: 500,
} as const satisfies Record<SubscriptionErrorCode, number>;

/** The status for a refusal with these errors: its first error's code (the edge's too, e.g. RATE_LIMITED: 429). */
export function refusalStatus(errors: readonly GraphQLError[]): number {
  const code = errors[0]?.extensions.code;
  if (typeof code !== 'string') return 400;
  if (Object.hasOwn(refusalStatusOf, code)) return refusalStatusOf[code as SubscriptionErrorCode];
  if (Object.hasOwn(httpStatusOf, code)) return httpStatusOf[code as keyof typeof httpStatusOf];
  return 400;
}

export const subscriptionError = (code: string, message: string, details: Record<string, unknown> = {}) =>
  new GraphQLError(message, { extensions: { code, ...details } });

/** A graphql-js error (syntax, validation, variables) with a code, keeping its locations. */
export const withCode = (error: GraphQLError, code: string) =>
  new GraphQLError(error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    extensions: { ...error.extensions, code },
  });
