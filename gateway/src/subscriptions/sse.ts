import type { IncomingMessage } from 'node:http';
import { resultJson } from './result-json.js';
import type { ExecutionResult, GraphQLFormattedError } from 'graphql';
import type { StreamFraming, StreamProtocol } from './http-streams.js';

/**
 * Subscriptions over Server-Sent Events, as graphql-sse's protocol has them in its "distinct
 * connections mode": one `GET /graphql?query=...` or `POST /graphql` with `Accept: text/event-stream`
 * per subscription; each result is a `next` event with the result as its data, and `complete` ends
 * it. Errors of a subscribe the engine refuses come inside the accepted stream (`next` with
 * `errors`, then `complete`), as that protocol requires.
 *
 * Every `next` carries an `id:`. A client that comes back with `Last-Event-ID` (EventSource does, by
 * itself) subscribes again and gets the current state first, then the changes: a state-based
 * resume, the same as any new subscribe, with ids that go on from the one it had. Changes of a feed
 * (a field with no current state) made while the client was away are not replayed.
 *
 * A stream the client should start again (live updates paused, gateway shutting down) ends without
 * `complete`: EventSource reconnects by itself, and graphql-sse's client retries a stream that
 * closed while it waited for `complete`.
 */
export function serverSentEvents(options: { heartbeatMs?: number } = {}): StreamProtocol {
  const heartbeatMs = options.heartbeatMs ?? 12_000;
  return {
    transport: 'sse',
    accepts: (range) => range.type === 'text/event-stream',
    refusesInStream: true,
    open: (request) => new EventStreamFraming(lastEventIdOf(request), heartbeatMs),
  };
}

/** The event stream of one subscription. */
export class EventStreamFraming implements StreamFraming {
  readonly headers = {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    // nginx (and ingress controllers built on it) would otherwise hold events back in its buffer.
    'x-accel-buffering': 'no',
  };
  /** A comment: some browsers wait for the first bytes before they report the stream open. */
  readonly opening = ':\n\n';
  /** A comment, which every client ignores; it keeps proxies from closing an idle stream. */
  readonly heartbeat = ':\n\n';
  /** With an empty `data:` field, without which EventSource dispatches no event. */
  readonly completed = 'event: complete\ndata:\n\n';

  constructor(
    /** The id of the last event the client had (its `Last-Event-ID`), 0 for a new client. */
    private lastId: number,
    readonly heartbeatMs: number,
  ) {}

  /** One line of data: JSON.stringify leaves no newline in it. */
  next(result: ExecutionResult | { errors: readonly GraphQLFormattedError[] }): string {
    const data = 'data' in result ? resultJson(result) : JSON.stringify(result);
    return `id: ${++this.lastId}\nevent: next\ndata: ${data}\n\n`;
  }

  failed(errors: readonly GraphQLFormattedError[]): string {
    return this.next({ errors }) + this.completed;
  }

  retry(): string {
    return '';
  }
}

/** The id the client last had, when it is one of ours (a whole number); else 0. */
function lastEventIdOf(request: IncomingMessage): number {
  const header = request.headers['last-event-id'];
  return typeof header === 'string' && /^\d{1,15}$/.test(header.trim()) ? Number(header.trim()) : 0;
}
