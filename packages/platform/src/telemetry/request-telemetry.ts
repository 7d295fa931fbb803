import { randomUUID } from 'node:crypto';
import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import type { NextFunction, Request, Response } from 'express';
import { ErrorCode } from '../errors.js';
import type { Logger } from '../logger.js';
import { counter, histogram } from './metrics.js';
import { activeSpan } from './tracing.js';

/** The header that carries a request's id from the client, through the gateway, into every subgraph. */
export const REQUEST_ID_HEADER = 'x-request-id';

/** A caller's request id is kept only when it is short and plain, so it is safe to log and forward. */
export function validRequestId(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(value) ? value : undefined;
}

/**
 * Express middleware: every request has an id, the caller's (see `validRequestId`) or a new one. It
 * is written back into the request's headers, where GraphQL contexts and plugins read it, and echoed
 * in the response, so a client can quote it.
 */
export function assignRequestId(req: Request, res: Response, next: NextFunction): void {
  const id = validRequestId(req.headers[REQUEST_ID_HEADER]) ?? randomUUID();
  req.headers[REQUEST_ID_HEADER] = id;
  res.setHeader(REQUEST_ID_HEADER, id);
  next();
}

type RequestOutcome = 'ok' | 'client_error' | 'server_error';

const requests = counter(
  'graphql_requests_total',
  'GraphQL requests, by server, operation name and outcome (ok, client_error, server_error).',
  ['server', 'operation', 'outcome'],
);
const durations = histogram(
  'graphql_request_duration_seconds',
  'Time from receiving a GraphQL request to sending its response, by server, operation name and outcome.',
  ['server', 'operation', 'outcome'],
);

/** Operation names come from clients: past this many per server, new ones are counted as `(other)`. */
const MAX_OPERATION_NAMES = 200;
/** The label of a request whose operation could not be resolved (no GraphQL name has parentheses). */
const INVALID = '(invalid)';
const SERVER_ERROR_CODES = new Set<string>([
  ErrorCode.INTERNAL_SERVER_ERROR,
  ErrorCode.UPSTREAM_UNAVAILABLE,
  ErrorCode.UPSTREAM_TIMEOUT,
]);

/**
 * One log line, one count and one latency sample per GraphQL request, with the request id, the
 * operation's name and type, the HTTP status, the outcome and the error codes. Never the query text
 * or its variables: either may carry personal data.
 *
 * Outcomes: `server_error` when the answer is 5xx or any error is ours (internal, or a subgraph down
 * or late: a partial answer counts), `client_error` for any other error (invalid query, bad input,
 * refused by a limit), `ok` otherwise.
 */
export function requestTelemetry<Ctx extends BaseContext>(server: string, logger: Logger): ApolloServerPlugin<Ctx> {
  return new GraphQLRequestTelemetry(server, logger).plugin<Ctx>();
}

/** One GraphQL request as telemetry records it. */
export interface GraphQLRequestRecord {
  requestId: unknown;
  /** The operation's name as sent (a label is made of it). */
  operationName: string | null | undefined;
  operationType: string | undefined;
  seconds: number;
  status: number;
  errors: readonly { extensions?: Record<string, unknown> }[];
  /** Set by a path that answers without executing (the gateway's response cache), for the log line. */
  cached?: boolean;
}

/**
 * A server's request telemetry: the Apollo Server plugin for requests it executes, and `record` for
 * requests another path of the same server answers (the gateway's cached responses), counted under
 * the same bounded set of operation labels.
 */
export class GraphQLRequestTelemetry {
  private readonly names = new Set<string>();
  private readonly logger: Logger;

  constructor(
    private readonly server: string,
    logger: Logger,
  ) {
    // Its lines hold only the fields `record` names (no query, variables or headers): the logger's
    // redaction, some 7 us a line, has nothing to find in them.
    this.logger = logger.child({}, { redact: [] });
  }

  /** The metrics label of an operation name: past MAX_OPERATION_NAMES distinct names, `(other)`. */
  label(name: string | null | undefined): string {
    if (!name) return '(anonymous)';
    if (name === INVALID) return INVALID;
    if (this.names.has(name)) return name;
    if (this.names.size >= MAX_OPERATION_NAMES) return '(other)';
    this.names.add(name);
    return name;
  }

  record({ requestId, operationName, operationType, seconds, status, errors, cached }: GraphQLRequestRecord): void {
    const { server } = this;
    const operation = this.label(operationName);
    const errorCodes = [...new Set(errors.map((error) => String(error.extensions?.code ?? 'UNKNOWN')))];
    const outcome: RequestOutcome =
      status >= 500 || errorCodes.some((code) => SERVER_ERROR_CODES.has(code))
        ? 'server_error'
        : errors.length > 0 || status >= 400
          ? 'client_error'
          : 'ok';
    requests.inc({ server, operation, outcome });
    durations.observe({ server, operation, outcome }, seconds);
    this.logger.info(
      {
        requestId,
        operation,
        operationType,
        durationMs: Math.round(seconds * 10_000) / 10,
        status,
        outcome,
        ...(errorCodes.length > 0 ? { errorCodes } : {}),
        ...(cached ? { cached } : {}),
      },
      'graphql request',
    );
  }

  plugin<Ctx extends BaseContext>(): ApolloServerPlugin<Ctx> {
    return {
      requestDidStart: async ({ request, contextValue }) => {
        const started = process.hrtime.bigint();
        // Over HTTP, the header; for work with no HTTP request of its own (a subscription's event), the context's.
        const requestId =
          request.http?.headers.get(REQUEST_ID_HEADER) ?? (contextValue as { requestId?: unknown }).requestId;
        let operationName: string | null | undefined;
        let operationType: string | undefined;
        let resolved = false;
        return {
          didResolveOperation: async ({ operationName: name, operation: definition }) => {
            resolved = true;
            operationName = name;
            operationType = definition?.operation;
            const operation = this.label(name);
            activeSpan()
              ?.updateName(`${operationType} ${operation}`)
              .setAttributes({ 'graphql.operation.name': operation, 'graphql.operation.type': operationType });
          },
          willSendResponse: async ({ response }) => {
            this.record({
              requestId,
              // A request that never resolved an operation is labelled as invalid, whatever it named.
              operationName: resolved ? operationName : INVALID,
              operationType,
              seconds: Number(process.hrtime.bigint() - started) / 1e9,
              status: response.http.status ?? 200,
              errors: response.body.kind === 'single' ? (response.body.singleResult.errors ?? []) : [],
            });
          },
        };
      },
    };
  }
}
