import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { CloseCode, handleProtocols, makeServer, type Context, type WebSocket as GraphqlWsSocket } from 'graphql-ws';
import type { ExecutionArgs, ExecutionResult } from 'graphql';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Caller, Logger } from '@food/platform';
import { authenticate, msUntilTokenExpiry, type AccessTokens } from '../auth.js';
import { GraphQLError } from '../graphql-js.js';
import type { RevokedSessions } from '../session-revocations.js';
import type { CheckedSubscription, SubscriptionEngine } from './engine.js';
import { resultBytes } from './result-json.js';
import { TextFrameWriter } from './ws-frames.js';
import { subscriptionError, SubscriptionErrorCode } from './errors.js';

export interface SubscriptionServerOptions {
  httpServer: Server;
  /** The subscriptions this transport carries (shared with the other transports). */
  engine: SubscriptionEngine;
  userTokens: AccessTokens;
  /** Closes a connection (4403 "Session revoked") once its token's session is revoked. */
  revokedSessions?: RevokedSessions;
  logger: Logger;
  maxSubscriptionsPerConnection: number;
  /** Default /graphql. */
  path?: string;
  /** How long a socket may stay open without `connection_init`. Default 5 s. */
  connectionInitWaitTimeoutMs?: number;
  /** Largest message a client may send. Default 64 KiB. */
  maxPayloadBytes?: number;
  /** Ping interval that detects dead sockets. Default 12 s. */
  keepAliveMs?: number;
  /** How long shutdown waits for clients to acknowledge the close before cutting them off. Default 1 s. */
  closeGraceMs?: number;
  production: boolean;
  /** The client's address for an upgrade request (after trusted proxies). Default: the socket's peer. */
  clientAddress?: (request: IncomingMessage) => string;
  /** Refuses upgrades (403) from browser pages on origins that are not allowed. Default: all allowed. */
  allowsOrigin?: (origin: string | undefined) => boolean;
}

export interface SubscriptionServer {
  /** Acknowledged graphql-ws connections. */
  connections(): number;
  /** Refuses new sockets and closes every client (1001); the engine's subscriptions end with them. */
  close(): Promise<void>;
}

interface Connection {
  caller: Caller;
  expiry?: NodeJS.Timeout;
  /** Stops watching the session for revocation. */
  unwatch?: () => void;
}

/**
 * What graphql-ws keeps of a socket (its `ctx.extra`): the socket and the client's address, not the
 * upgrade request, which would otherwise stay in memory with its headers for the socket's lifetime.
 */
interface SocketExtra {
  readonly socket: WebSocket;
  readonly clientAddress: string;
  /** Until `connection_init` arrives: closes the socket (4408) when it does not in time. */
  initWait?: NodeJS.Timeout;
}

type ConnectionContext = Context<Record<string, unknown> | undefined, SocketExtra>;

/**
 * A ws socket as graphql-ws's server sees it. Methods on a class, not closures per socket: at
 * thousands of idle sockets, every object kept per socket counts.
 */
class GraphqlWsTransport implements GraphqlWsSocket {
  constructor(
    private readonly socket: WebSocket,
    private readonly frames: TextFrameWriter,
    private readonly onInternalError: (socket: WebSocket, error: unknown) => void,
  ) {}

  get protocol(): string {
    return this.socket.protocol;
  }

  send(data: string): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.socket.readyState !== this.socket.OPEN) return resolve();
      // After the results queued before it (a `complete` follows its subscription's last `next`).
      this.frames.flush(this.socket);
      this.socket.send(data, (error) => (error ? reject(error) : resolve()));
    });
  }

  close(code?: number, reason?: string): void {
    this.frames.flush(this.socket);
    this.socket.close(code, reason);
  }

  onMessage(handle: (data: string) => Promise<void>): void {
    const { socket, onInternalError } = this;
    // Not an async listener: nothing keeps the message's buffer once graphql-ws has its text (a
    // subscription's handler stays suspended for as long as the subscription runs).
    socket.on('message', (data: Buffer) => {
      handle(String(data)).catch((error: unknown) => onInternalError(socket, error));
    });
  }
}

/** What onSubscribe hands to `subscribe`: the checked subscription, its socket and its id there. */
class PlannedSubscription {
  constructor(
    readonly checked: CheckedSubscription,
    readonly socket: WebSocket,
    readonly id: string,
  ) {}
}

/** A subscriber whose socket holds this much unsent is too far behind: it is closed, to subscribe again. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
/** The end of every `next` message, after its payload. */
const NEXT_SUFFIX = '}';
/** Sockets pinged in one turn of the event loop. */
const PING_BATCH = 1_000;

/**
 * GraphQL subscriptions over WebSockets (graphql-ws) on the gateway's own HTTP server and path. The
 * gateway serves them itself (@apollo/gateway cannot), from the fields the subgraphs declare with
 * `@subscribe`: each event's entity is resolved through the supergraph's query plan, as the audience
 * the declaration names, so the subgraphs authorise it exactly as the same data over HTTP.
 */
export function attachSubscriptionServer(options: SubscriptionServerOptions): SubscriptionServer {
  const path = options.path ?? '/graphql';
  const logger = options.logger.child({ component: 'subscriptions' });
  const { engine } = options;
  const connections = new Map<ConnectionContext, Connection>();
  // Results go out as frames built here, one write per socket per turn of the event loop.
  const frames = new TextFrameWriter();
  const clientAddressOf =
    options.clientAddress ?? ((request: IncomingMessage) => request.socket.remoteAddress ?? 'unknown');
  let closing = false;

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.maxPayloadBytes ?? 64 * 1024,
    handleProtocols: (protocols) => handleProtocols(protocols),
  });
  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (pathOf(request) !== path) return refuseUpgrade(socket, 404, 'Not Found');
    if (closing) return refuseUpgrade(socket, 503, 'Service Unavailable');
    if (options.allowsOrigin && !options.allowsOrigin(request.headers.origin))
      return refuseUpgrade(socket, 403, 'Forbidden');
    wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
  };
  options.httpServer.on('upgrade', onUpgrade);

  const server = makeServer<Record<string, unknown> | undefined, SocketExtra>({
    // Timed here (initWait), so that the timer is released once the client has initialised.
    connectionInitWaitTimeout: 0,
    onConnect: async (ctx) => {
      clearTimeout(ctx.extra.initWait);
      ctx.extra.initWait = undefined;
      if (closing) return false;
      const authorization = ctx.connectionParams?.authorization;
      if (authorization !== undefined && typeof authorization !== 'string') return false;
      let caller: Caller;
      try {
        // The same rules as HTTP: a token that is present but bad or expired is refused (4403).
        caller = await authenticate(authorization ? { authorization } : {}, options.userTokens);
      } catch (error) {
        logger.debug({ reason: error instanceof Error ? error.message : String(error) }, 'connection refused');
        return false;
      }
      // The socket may have closed while the token was checked (a second connection_init closes it
      // with 4429): onClose has run already, so a connection remembered now would never be forgotten.
      if (ctx.extra.socket.readyState !== ctx.extra.socket.OPEN) return false;
      // Checked: the token is not needed again (expiry is timed below), so it is not kept per connection.
      delete (ctx as { connectionParams?: unknown }).connectionParams;
      const connection: Connection = { caller };
      const expiresInMs = authorization ? msUntilTokenExpiry(authorization) : undefined;
      if (expiresInMs !== undefined) {
        // A connection lives no longer than the token it was opened with.
        connection.expiry = setTimeout(
          () => ctx.extra.socket.close(CloseCode.Forbidden, 'Token expired'),
          Math.min(expiresInMs, 2 ** 31 - 1),
        );
        connection.expiry.unref();
      }
      connections.set(ctx, connection);
      if (caller.kind === 'user' && options.revokedSessions) {
        // Its subscriptions resolve as this caller for as long as it lives: a revoked session ends it now.
        connection.unwatch = options.revokedSessions.watch(caller.sessionId, () =>
          ctx.extra.socket.close(CloseCode.Forbidden, 'Session revoked'),
        );
      }
      return true;
    },
    onClose: (ctx) => {
      const connection = connections.get(ctx);
      if (connection?.expiry) clearTimeout(connection.expiry);
      connection?.unwatch?.();
      connections.delete(ctx);
    },
    onSubscribe: async (ctx, id, payload) => {
      const connection = connections.get(ctx);
      if (!connection) return [subscriptionError(SubscriptionErrorCode.UNAUTHENTICATED, 'connection not initialised')];
      if (closing) {
        return [subscriptionError(SubscriptionErrorCode.SUBSCRIPTIONS_UNAVAILABLE, 'the gateway is shutting down')];
      }
      // graphql-ws has already counted this one.
      const open = Object.keys(ctx.subscriptions).length;
      if (open > options.maxSubscriptionsPerConnection) {
        return [
          subscriptionError(
            SubscriptionErrorCode.TOO_MANY_SUBSCRIPTIONS,
            `at most ${options.maxSubscriptionsPerConnection} subscriptions per connection`,
            { max: options.maxSubscriptionsPerConnection },
          ),
        ];
      }
      const checked = await engine.check(payload, {
        caller: connection.caller,
        clientAddress: ctx.extra.clientAddress,
        transport: 'websocket',
      });
      if (Array.isArray(checked)) return checked;
      return {
        schema: checked.schema,
        document: checked.plan.document,
        operationName: payload.operationName,
        variableValues: payload.variables,
        contextValue: new PlannedSubscription(checked, ctx.extra.socket, id),
      } satisfies ExecutionArgs;
    },
    subscribe: (args): AsyncIterable<ExecutionResult> | ExecutionResult => {
      const planned = args.contextValue;
      if (!(planned instanceof PlannedSubscription)) {
        return { errors: [new GraphQLError('subscription was not planned')] };
      }
      const { socket } = planned;
      const prefix = `{"id":${JSON.stringify(planned.id)},"type":"next","payload":`;
      return engine.start(planned.checked, {
        // graphql-ws clients reconnect after 1013 and subscribe again: the current state comes first.
        onRetryableEnd: () => closeForRetry(frames, socket, 'Try again later'),
        // Each result to the socket as a `next` message, around the JSON its topic encoded once:
        // graphql-ws's own path costs a few promises and a stringify per subscriber and result,
        // which at tens of thousands of subscribers of one change is most of the gateway's work.
        sendNext: (result) => {
          if (socket.readyState !== socket.OPEN) return;
          if (socket.bufferedAmount > MAX_BUFFERED_BYTES) {
            return closeForRetry(frames, socket, 'Too far behind; subscribe again');
          }
          frames.queue(socket, [prefix, resultBytes(result), NEXT_SUFFIX]);
        },
      });
    },
  });

  const connectionInitWaitMs = options.connectionInitWaitTimeoutMs ?? 5_000;
  const internalError = (socket: WebSocket, error: unknown) => {
    logger.error({ err: error }, 'internal error in a WebSocket connection');
    const reason = options.production
      ? 'Internal server error'
      : limitCloseReason(error instanceof Error ? error.message : String(error));
    frames.flush(socket);
    socket.close(CloseCode.InternalServerError, reason);
  };
  function onSocketError(this: WebSocket, error: Error) {
    internalError(this, error);
  }

  // Dead sockets: one timer for all of them (not one per socket). Each tick pings every open socket;
  // one that has not answered the previous tick's ping within the interval is cut off.
  const awaitingPong = new WeakSet<WebSocket>();
  function onPong(this: WebSocket) {
    awaitingPong.delete(this);
  }
  const keepAliveMs = options.keepAliveMs ?? 12_000;
  const checkSockets = (clients: WebSocket[], from: number) => {
    for (const client of clients.slice(from, from + PING_BATCH)) {
      if (client.readyState !== client.OPEN) continue;
      if (awaitingPong.has(client)) {
        client.terminate();
        continue;
      }
      awaitingPong.add(client);
      client.ping();
    }
    // A batch at a time: at tens of thousands of sockets one loop would hold up every delivery.
    if (from + PING_BATCH < clients.length) setImmediate(() => checkSockets(clients, from + PING_BATCH));
  };
  const keepAlive =
    keepAliveMs > 0 && Number.isFinite(keepAliveMs)
      ? setInterval(() => checkSockets([...wss.clients], 0), keepAliveMs).unref()
      : undefined;

  wss.on('error', (error) => {
    logger.error({ err: error }, 'internal error on the WebSocket server');
    for (const client of wss.clients) internalError(client, error);
  });
  wss.on('connection', (socket: WebSocket, request: IncomingMessage) => {
    socket.once('error', onSocketError);
    socket.on('pong', onPong);
    const extra: SocketExtra = { socket, clientAddress: clientAddressOf(request) };
    if (connectionInitWaitMs > 0 && Number.isFinite(connectionInitWaitMs)) {
      extra.initWait = setTimeout(
        () => socket.close(CloseCode.ConnectionInitialisationTimeout, 'Connection initialisation timeout'),
        connectionInitWaitMs,
      );
    }
    const closed = server.opened(new GraphqlWsTransport(socket, frames, internalError), extra);
    socket.once('close', (code: number, reason: Buffer) => {
      clearTimeout(extra.initWait);
      closed(code, String(reason)).catch((error: unknown) =>
        logger.error({ err: error }, 'could not end the subscriptions of a closed socket'),
      );
    });
  });

  return {
    connections: () => connections.size,
    close: async () => {
      if (closing) return;
      closing = true;
      clearInterval(keepAlive);
      const clients = [...wss.clients];
      // What was resolved before shutdown still reaches its subscribers, ahead of the close.
      frames.flushAll();
      for (const client of clients) client.close(1001, 'Going away');
      await waitForClose(clients, options.closeGraceMs ?? 1_000);
      // The upgrade listener stays: until the HTTP server closes too, new sockets get 503.
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/** Closes with 1013, which graphql-ws clients answer by subscribing again, after what was queued for the socket. */
function closeForRetry(frames: TextFrameWriter, socket: WebSocket, reason: string) {
  frames.flush(socket);
  socket.close(1013, reason);
}

/** A close reason fits in a control frame (123 bytes). */
function limitCloseReason(reason: string): string {
  return Buffer.byteLength(reason) < 124 ? reason : 'Internal server error';
}

function pathOf(request: IncomingMessage): string {
  try {
    return new URL(request.url ?? '/', 'http://gateway').pathname;
  } catch {
    return '';
  }
}

function refuseUpgrade(socket: Duplex, status: number, reason: string) {
  socket.once('finish', () => socket.destroy());
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

/** Resolves when every client has closed, or after `graceMs`, cutting off the ones still open. */
async function waitForClose(clients: WebSocket[], graceMs: number): Promise<void> {
  const open = clients.filter((client) => client.readyState !== client.CLOSED);
  if (open.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(open.map((client) => new Promise((resolve) => client.once('close', resolve)))),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    }),
  ]);
  clearTimeout(timer);
  for (const client of open) if (client.readyState !== client.CLOSED) client.terminate();
}
