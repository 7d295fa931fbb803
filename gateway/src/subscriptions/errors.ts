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
  /** The connection already holds the maximum number of subscriptions. */
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

/** What a client gets when it sends a subscription over HTTP. */
export const SUBSCRIPTIONS_OVER_WEBSOCKETS = 'subscriptions are served over WebSockets (graphql-ws) on /graphql';

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
