import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ExecutionResult, GraphQLFormattedError } from 'graphql';
import type { Caller, Logger } from '@food/platform';
import { authenticate, msUntilTokenExpiry, type AccessTokens } from '../auth.js';
import type { RevokedSessions } from '../session-revocations.js';
import { GraphQLError, getOperationAST, OperationTypeNode, parse } from '../graphql-js.js';
import type { CheckedSubscription, SubscriptionEngine } from './engine.js';
import { refusalStatus, subscriptionError, SubscriptionErrorCode } from './errors.js';
import type { SubscribeRequest } from './operation.js';

/**
 * What the HTTP transports (SSE in sse.ts, multipart HTTP in multipart.ts) share: which requests are
 * theirs, authentication, the per-address limit, the loop that writes a subscription's results with
 * heartbeats, its end, and shutdown. Each protocol only says how it is asked for and how it frames.
 */

/** One media range of an `Accept` header: its type and parameters, names in lower case, values unquoted. */
export interface MediaRange {
  type: string;
  params: ReadonlyMap<string, string>;
}

/** The media ranges of an `Accept` header in the client's order, without those it refuses (q=0). */
export function mediaRangesOf(accept: string | undefined): MediaRange[] {
  const ranges: MediaRange[] = [];
  for (const item of (accept ?? '').split(',')) {
    const [type = '', ...params] = item.split(';').map((part) => part.trim());
    const parsed = new Map<string, string>();
    for (const param of params) {
      const equals = param.indexOf('=');
      if (equals <= 0) continue;
      const value = param.slice(equals + 1).trim();
      parsed.set(param.slice(0, equals).trim().toLowerCase(), value.replace(/^"(.*)"$/, '$1'));
    }
    if (type && Number(parsed.get('q') ?? 1) > 0) ranges.push({ type: type.toLowerCase(), params: parsed });
  }
  return ranges;
}

/** A streaming protocol: how a client asks for it, and how it frames one response. */
export interface StreamProtocol {
  readonly transport: 'sse' | 'multipart';
  /** Whether this media range of the request's `Accept` asks for the protocol. */
  accepts(range: MediaRange): boolean;
  /**
   * Whether a subscribe the engine refuses is answered inside an accepted stream (SSE: its protocol
   * says so, since EventSource shows nothing of a failed response), rather than as a plain GraphQL
   * response with the refusal's HTTP status (multipart, as Apollo Router answers).
   */
  readonly refusesInStream: boolean;
  /** The framing of one response to this request. */
  open(request: IncomingMessage): StreamFraming;
}

/** The bytes of one streamed response. */
export interface StreamFraming {
  readonly headers: Readonly<Record<string, string>>;
  /** Written as soon as the subscription starts: the client knows it is subscribed. */
  readonly opening: string;
  readonly heartbeat: string;
  readonly heartbeatMs: number;
  next(result: ExecutionResult): string;
  /** The last bytes of a subscription that completed. */
  readonly completed: string;
  /** The last bytes of a subscription that ended with errors. */
  failed(errors: readonly GraphQLFormattedError[]): string;
  /** The last bytes of a subscription the client should start again (live updates paused, shutdown). */
  retry(error: GraphQLFormattedError): string;
}

export interface HttpSubscriptionsOptions {
  /** The subscriptions these transports carry (shared with graphql-ws). */
  engine: SubscriptionEngine;
  userTokens: AccessTokens;
  /** Ends a stream (UNAUTHENTICATED "Session revoked") once its token's session is revoked. */
  revokedSessions?: RevokedSessions;
  logger: Logger;
  /** The protocols served, each recognised by the request's `Accept`. */
  protocols: readonly StreamProtocol[];
  /** Streams one client address may hold at once, over all of these protocols. */
  maxStreamsPerAddress: number;
  /** The client's address (after trusted proxies). Default: the socket's peer. */
  clientAddress?: (request: IncomingMessage) => string;
  /** Refuses (403) browser pages on origins that are not allowed. Default: all allowed. */
  allowsOrigin?: (origin: string | undefined) => boolean;
}

/** A request as it reaches a handler on /graphql: the JSON body is parsed already. */
export type GraphQLHttpRequest = IncomingMessage & { body?: unknown };

export interface HttpSubscriptions {
  /** For /graphql before Apollo Server: serves a subscription that asks for a stream; passes on every other request. */
  handle(request: GraphQLHttpRequest, response: ServerResponse, next: (error?: unknown) => void): Promise<void>;
  /** Streams open now. */
  streams(): number;
  /** Refuses new streams (503) and ends every open one the way its protocol asks a client to subscribe again. */
  close(): Promise<void>;
}

/** Subscriptions over HTTP responses that stream: one per request, served from the engine. */
export function serveHttpSubscriptions(options: HttpSubscriptionsOptions): HttpSubscriptions {
  const { engine, logger, protocols } = options;
  const clientAddressOf =
    options.clientAddress ?? ((request: IncomingMessage) => request.socket.remoteAddress ?? 'unknown');
  const perAddress = new AddressSlots(options.maxStreamsPerAddress);
  const open = new Set<SubscriptionResponse>();
  let closing = false;

  const protocolFor = (accept: string | undefined) => {
    for (const range of mediaRangesOf(accept)) {
      const protocol = protocols.find((candidate) => candidate.accepts(range));
      if (protocol) return protocol;
    }
    return undefined;
  };

  async function serve(
    request: GraphQLHttpRequest,
    response: ServerResponse,
    protocol: StreamProtocol,
    subscribe: SubscribeRequest,
  ): Promise<void> {
    if (options.allowsOrigin && !options.allowsOrigin(request.headers.origin)) {
      return respondWithErrors(request, response, 403, [
        subscriptionError(SubscriptionErrorCode.FORBIDDEN, 'subscriptions are not allowed from this origin'),
      ]);
    }
    const gatewayClosing = () =>
      respondWithErrors(request, response, 503, [
        subscriptionError(SubscriptionErrorCode.SUBSCRIPTIONS_UNAVAILABLE, 'the gateway is shutting down'),
      ]);
    if (closing) return gatewayClosing();
    let caller: Caller;
    try {
      // The same rules as HTTP: a token that is present but bad or expired is refused (401).
      caller = await authenticate(request.headers, options.userTokens);
    } catch (error) {
      if (!(error instanceof GraphQLError)) throw error;
      return respondWithErrors(request, response, 401, [error]);
    }
    const clientAddress = clientAddressOf(request);
    if (!perAddress.take(clientAddress)) {
      const max = options.maxStreamsPerAddress;
      return respondWithErrors(request, response, 429, [
        subscriptionError(
          SubscriptionErrorCode.TOO_MANY_SUBSCRIPTIONS,
          `at most ${max} subscriptions over HTTP (SSE, multipart) per client address`,
          { max, scope: 'address' },
        ),
      ]);
    }
    try {
      const checked = await engine.check(subscribe, { caller, clientAddress, transport: protocol.transport });
      // The client left while its subscription was checked, or the gateway began to shut down.
      if (response.destroyed) return;
      if (closing) return gatewayClosing();
      const framing = protocol.open(request);
      if (Array.isArray(checked)) {
        logger.debug(
          { transport: protocol.transport, codes: checked.map((e) => e.extensions.code) },
          'subscribe refused',
        );
        if (!protocol.refusesInStream) return respondWithErrors(request, response, refusalStatus(checked), checked);
        response.writeHead(200, framing.headers);
        return await endResponse(response, framing.opening + framing.failed(checked.map(formatted)));
      }
      const authorization = request.headers.authorization;
      const subscription = new SubscriptionResponse(
        engine,
        checked,
        response,
        framing,
        authorization ? msUntilTokenExpiry(authorization) : undefined,
      );
      open.add(subscription);
      const unwatch =
        caller.kind === 'user' && options.revokedSessions
          ? options.revokedSessions.watch(caller.sessionId, () => subscription.sessionRevoked())
          : undefined;
      try {
        await subscription.run();
      } finally {
        unwatch?.();
        open.delete(subscription);
      }
    } finally {
      perAddress.release(clientAddress);
    }
  }

  return {
    handle: async (request, response, next) => {
      const protocol = protocolFor(request.headers.accept);
      const subscribe = protocol ? subscribeRequestOf(request) : undefined;
      // Queries and mutations, whatever they accept, and anything malformed: Apollo Server's, as before.
      if (!protocol || !subscribe || !isSubscription(subscribe)) return next();
      try {
        await serve(request, response, protocol, subscribe);
      } catch (error) {
        logger.error({ err: error, transport: protocol.transport }, 'internal error in a subscription over HTTP');
        if (response.headersSent) return void response.destroy();
        respondWithErrors(request, response, 500, [
          subscriptionError(SubscriptionErrorCode.INTERNAL_SERVER_ERROR, 'Internal server error'),
        ]);
      }
    },
    streams: () => open.size,
    close: async () => {
      closing = true;
      const ending = [...open];
      for (const subscription of ending) subscription.shutDown();
      await Promise.all(ending.map((subscription) => subscription.finished));
    },
  };
}

/**
 * One subscription's response: its results as the protocol frames them, a heartbeat, and one end,
 * whichever comes first: the subscription completes or fails, the client goes away (the engine's
 * iterator is returned at once), the token expires, or the gateway shuts down.
 */
class SubscriptionResponse {
  private readonly iterator: AsyncIterableIterator<ExecutionResult>;
  /** The last bytes, once the gateway has decided how the stream ends. */
  private last: string | undefined;
  private resolveFinished!: () => void;
  /** Resolves once the response has ended, however it ended. */
  readonly finished = new Promise<void>((resolve) => (this.resolveFinished = resolve));

  constructor(
    engine: SubscriptionEngine,
    checked: CheckedSubscription,
    private readonly response: ServerResponse,
    private readonly framing: StreamFraming,
    private readonly tokenExpiresInMs: number | undefined,
  ) {
    this.iterator = engine.start(checked, {
      // The subscription then completes; the protocol's retry ending makes the client subscribe again.
      onRetryableEnd: () => {
        this.last ??= framing.retry(formatted(liveUpdatesPaused()));
      },
    });
  }

  async run(): Promise<void> {
    try {
      await endResponse(this.response, await this.write());
    } finally {
      this.resolveFinished();
    }
  }

  /** Writes the results as they come; returns the last bytes. */
  private async write(): Promise<string> {
    const { response, framing, iterator } = this;
    const leave = () => void iterator.return?.();
    response.once('close', leave);
    response.writeHead(200, framing.headers);
    response.write(framing.opening);
    const heartbeat = setInterval(() => {
      // A client that is not reading has enough waiting for it.
      if (!response.writableNeedDrain) response.write(framing.heartbeat);
    }, framing.heartbeatMs).unref();
    const expiry =
      this.tokenExpiresInMs === undefined
        ? undefined
        : setTimeout(
            () => this.stop(framing.failed([formatted(tokenExpired())])),
            Math.min(this.tokenExpiresInMs, 2 ** 31 - 1),
          ).unref();
    try {
      for (let step = await iterator.next(); !step.done; step = await iterator.next()) {
        // A slow client: wait for it; meanwhile the engine holds its results, up to its own limit.
        if (!response.write(framing.next(step.value))) await drained(response);
      }
      return this.last ?? framing.completed;
    } catch (error) {
      return framing.failed([formatted(error)]);
    } finally {
      clearInterval(heartbeat);
      clearTimeout(expiry);
      response.off('close', leave);
    }
  }

  /** The token's session was revoked: the stream ends, the client must log in again. */
  sessionRevoked(): void {
    this.stop(this.framing.failed([formatted(sessionRevoked())]));
  }

  /** Gateway shutdown: the client should subscribe again, elsewhere. */
  shutDown(): void {
    this.stop(this.framing.retry(formatted(shuttingDown())));
  }

  private stop(last: string): void {
    this.last ??= last;
    void this.iterator.return?.();
  }
}

/** Streams held per client address, against one maximum. */
class AddressSlots {
  private readonly held = new Map<string, number>();

  constructor(private readonly max: number) {}

  take(address: string): boolean {
    const count = this.held.get(address) ?? 0;
    if (count >= this.max) return false;
    this.held.set(address, count + 1);
    return true;
  }

  release(address: string): void {
    const count = (this.held.get(address) ?? 1) - 1;
    if (count > 0) this.held.set(address, count);
    else this.held.delete(address);
  }
}

const liveUpdatesPaused = () =>
  subscriptionError(
    SubscriptionErrorCode.UPSTREAM_UNAVAILABLE,
    'live updates are unavailable right now; subscribe again',
    { retryable: true },
  );
const shuttingDown = () =>
  subscriptionError(SubscriptionErrorCode.SUBSCRIPTIONS_UNAVAILABLE, 'the gateway is shutting down; subscribe again', {
    retryable: true,
  });
const tokenExpired = () => subscriptionError(SubscriptionErrorCode.UNAUTHENTICATED, 'Token expired');
const sessionRevoked = () => subscriptionError(SubscriptionErrorCode.UNAUTHENTICATED, 'Session revoked');

/** The GraphQL request of a GET (query string) or POST (JSON body); undefined when it is not one. */
function subscribeRequestOf(request: GraphQLHttpRequest): SubscribeRequest | undefined {
  if (request.method === 'GET') {
    const params = new URL(request.url ?? '/', 'http://gateway').searchParams;
    const query = params.get('query');
    let variables: unknown;
    try {
      variables = JSON.parse(params.get('variables') ?? 'null');
    } catch {
      return undefined;
    }
    if (query === null || (variables !== null && !isRecord(variables))) return undefined;
    return { query, operationName: params.get('operationName'), variables };
  }
  if (request.method !== 'POST' || !isRecord(request.body)) return undefined;
  const { query, operationName, variables } = request.body;
  if (typeof query !== 'string' || (variables != null && !isRecord(variables))) return undefined;
  return { query, operationName: typeof operationName === 'string' ? operationName : null, variables };
}

/** Whether the operation the request names is a subscription (the engine validates it in full). */
function isSubscription({ query, operationName }: SubscribeRequest): boolean {
  try {
    const operation = getOperationAST(parse(query, { noLocation: true }), operationName ?? undefined);
    return operation?.operation === OperationTypeNode.SUBSCRIPTION;
  } catch {
    return false;
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** An error as a client gets it: its HTTP status (`extensions.http`) is the response's business. */
function formatted(error: unknown): GraphQLFormattedError {
  if (!(error instanceof GraphQLError)) {
    return { message: 'Internal server error', extensions: { code: SubscriptionErrorCode.INTERNAL_SERVER_ERROR } };
  }
  const { http: _http, ...extensions } = error.extensions;
  return { ...error.toJSON(), extensions };
}

/**
 * A refusal before any stream, as a plain GraphQL response: `application/graphql-response+json`
 * when the client accepts it (Apollo Client then reads the errors whatever the status), else JSON.
 */
function respondWithErrors(
  request: IncomingMessage,
  response: ServerResponse,
  status: number,
  errors: readonly GraphQLError[],
): void {
  const type = mediaRangesOf(request.headers.accept).some((range) => range.type === 'application/graphql-response+json')
    ? 'application/graphql-response+json'
    : 'application/json';
  const headers: Record<string, string> = { 'content-type': `${type}; charset=utf-8` };
  const retryAfter = errors[0]?.extensions.retryAfterSeconds;
  if (typeof retryAfter === 'number') headers['retry-after'] = String(retryAfter);
  response.writeHead(status, headers).end(JSON.stringify({ errors: errors.map(formatted) }));
}

/** Ends the response with its last bytes; resolves once they are written, or the client is gone. */
function endResponse(response: ServerResponse, last: string): Promise<void> {
  if (response.destroyed || response.writableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    response.once('close', resolve);
    response.end(last, resolve);
  });
}

/** Resolves when the response can take more, or the client is gone. */
function drained(response: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      response.off('drain', done);
      response.off('close', done);
      resolve();
    };
    response.on('drain', done);
    response.on('close', done);
  });
}
