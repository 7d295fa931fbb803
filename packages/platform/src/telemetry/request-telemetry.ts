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
  const names = new Set<string>();
  const operationLabel = (name: string | null | undefined): string => {
    if (!name) return '(anonymous)';
    if (names.has(name)) return name;
    if (names.size >= MAX_OPERATION_NAMES) return '(other)';
    names.add(name);
    return name;
  };
  return {
    async requestDidStart({ request, contextValue }) {
      const started = process.hrtime.bigint();
      // Over HTTP, the header; for work with no HTTP request of its own (a subscription's event), the context's.
      const requestId =
        request.http?.headers.get(REQUEST_ID_HEADER) ?? (contextValue as { requestId?: unknown }).requestId;
      let operation = '(invalid)';
      let operationType: string | undefined;
      return {
        async didResolveOperation({ operationName, operation: definition }) {
          operation = operationLabel(operationName);
          operationType = definition?.operation;
          activeSpan()
            ?.updateName(`${operationType} ${operation}`)
            .setAttributes({ 'graphql.operation.name': operation, 'graphql.operation.type': operationType });
        },
        async willSendResponse({ response }) {
          const seconds = Number(process.hrtime.bigint() - started) / 1e9;
          const status = response.http.status ?? 200;
          const errors = response.body.kind === 'single' ? (response.body.singleResult.errors ?? []) : [];
          const errorCodes = [...new Set(errors.map((error) => String(error.extensions?.code ?? 'UNKNOWN')))];
          const outcome: RequestOutcome =
            status >= 500 || errorCodes.some((code) => SERVER_ERROR_CODES.has(code))
              ? 'server_error'
              : errors.length > 0 || status >= 400
                ? 'client_error'
                : 'ok';
          requests.inc({ server, operation, outcome });
          durations.observe({ server, operation, outcome }, seconds);
          logger.info(
            {
              requestId,
              operation,
              operationType,
              durationMs: Math.round(seconds * 10_000) / 10,
              status,
              outcome,
              ...(errorCodes.length > 0 ? { errorCodes } : {}),
            },
            'graphql request',
          );
        },
      };
    },
  };
}
