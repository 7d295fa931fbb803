import { resultJson } from './result-json.js';
import type { ExecutionResult, GraphQLFormattedError } from 'graphql';
import type { StreamFraming, StreamProtocol } from './http-streams.js';

/**
 * Subscriptions over multipart HTTP, Apollo's protocol, as Apollo Router serves it and Apollo
 * Client's HttpLink sends it: `POST /graphql` with `Accept: multipart/mixed;subscriptionSpec="1.0"`
 * (quoted or not), answered `multipart/mixed;boundary="graphql";subscriptionSpec="1.0"`. Each part is
 * JSON: `{"payload": <result>}` per result, `{}` as a heartbeat, and `{"payload": null, "errors":
 * [...]}` for an error that ends the subscription (Apollo Client reports those as protocol errors);
 * the final boundary `--graphql--` ends it.
 *
 * Apollo Client does not subscribe again by itself, so a subscription to start again (live updates
 * paused, gateway shutting down) ends with such an error, coded and marked `retryable`, for the app
 * to resubscribe: it then gets the current state first. A subscribe the engine refuses is a plain
 * GraphQL response with the refusal's status, as for any other request.
 */
export function multipartSubscriptions(options: { heartbeatMs?: number } = {}): StreamProtocol {
  const framing = new MultipartFraming(options.heartbeatMs ?? 5_000);
  return {
    transport: 'multipart',
    accepts: (range) => range.type === 'multipart/mixed' && range.params.get('subscriptionspec') === '1.0',
    refusesInStream: false,
    // Nothing in it depends on the request: one for every response.
    open: () => framing,
  };
}

const BOUNDARY = 'graphql';

/**
 * Every part ends with the boundary, so that the client can read it at once (a reader cannot tell a
 * part has ended before the next boundary); `--` after the last boundary makes it the final one.
 */
const part = (json: string) => `\r\ncontent-type: application/json\r\n\r\n${json}\r\n--${BOUNDARY}`;
const FINAL = '--\r\n';

export class MultipartFraming implements StreamFraming {
  readonly headers = {
    'content-type': `multipart/mixed;boundary="${BOUNDARY}";subscriptionSpec="1.0"`,
    'cache-control': 'no-cache',
    // nginx (and ingress controllers built on it) would otherwise hold parts back in its buffer.
    'x-accel-buffering': 'no',
  };
  /** The first boundary (no preamble). */
  readonly opening = `\r\n--${BOUNDARY}`;
  readonly heartbeat = part('{}');
  readonly completed = FINAL;

  constructor(readonly heartbeatMs: number) {}

  next(result: ExecutionResult): string {
    return part(`{"payload":${resultJson(result)}}`);
  }

  failed(errors: readonly GraphQLFormattedError[]): string {
    return part(JSON.stringify({ payload: null, errors })) + FINAL;
  }

  retry(error: GraphQLFormattedError): string {
    return this.failed([error]);
  }
}
