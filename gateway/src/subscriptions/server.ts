import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ApolloServer } from '@apollo/server';
import { CloseCode, handleProtocols, makeServer, type Context, type WebSocket as GraphqlWsSocket } from 'graphql-ws';
import type { ExecutionArgs, ExecutionResult, GraphQLSchema } from 'graphql';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Caller, EventBus, Logger, UserTokens } from '@food/platform';
import { authenticate } from '../auth.js';
import type { GatewayContext } from '../context.js';
import type { OperationGuard } from '../edge/index.js';
import { getOperationAST, GraphQLError } from '../graphql-js.js';
import { subscriptionError, SubscriptionErrorCode } from './errors.js';
import { OrderEventHub, type OrderEventHubCounts } from './hub.js';
import { planSubscription, shapeResult, type SubscriptionPlan } from './operation.js';
import { OrderSubscriptionStream, type OrderResolver } from './stream.js';

export interface SubscriptionServerOptions {
  httpServer: Server;
  /** The API schema, once the gateway has loaded the supergraph. */
  schema: () => GraphQLSchema | undefined;
  /** The gateway's Apollo Server, once built: each result is a query executed through it. */
  apollo: () => ApolloServer<GatewayContext> | undefined;
  userTokens: UserTokens;
  /** Where order events come from; without it every subscribe is refused (SUBSCRIPTIONS_UNAVAILABLE). */
  eventBus?: EventBus;
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
  /** Rate budgets, safelist and query bounds, checked at each subscribe as for HTTP operations. */
  guard?: OperationGuard;
  /** The client's address for an upgrade request (after trusted proxies). Default: the socket's peer. */
  clientAddress?: (request: IncomingMessage) => string;
  /** Refuses upgrades (403) from browser pages on origins that are not allowed. Default: all allowed. */
  allowsOrigin?: (origin: string | undefined) => boolean;
}

export interface SubscriptionServer {
  /** Subscriptions currently running (streams not yet ended), over all connections. */
  activeSubscriptions(): number;
  /** Acknowledged graphql-ws connections. */
  connections(): number;
  /** The order-event registry's listener counts. */
  listenerCounts(): OrderEventHubCounts;
  /** How many times the orders stream tail was started (one per process, plus retries after a failure). */
  tailsStarted(): number;
  /** Refuses new sockets, closes every client (1001), ends every subscription and stops the tail. */
  close(): Promise<void>;
}

interface Connection {
  caller: Caller;
  expiry?: NodeJS.Timeout;
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
    private readonly onInternalError: (socket: WebSocket, error: unknown) => void,
  ) {}

  get protocol(): string {
    return this.socket.protocol;
  }

  send(data: string): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.socket.readyState !== this.socket.OPEN) return resolve();
      this.socket.send(data, (error) => (error ? reject(error) : resolve()));
    });
  }

  close(code?: number, reason?: string): void {
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

/** What onSubscribe hands to `subscribe`: the checked plan and the caller's request context. */
class PlannedSubscription {
  constructor(
    readonly plan: SubscriptionPlan,
    readonly context: GatewayContext,
  ) {}
}

/**
 * GraphQL subscriptions over WebSockets (graphql-ws) on the gateway's own HTTP server and path. The
 * gateway serves them itself (@apollo/gateway cannot): each result is a query for the `Order`,
 * executed through the gateway's Apollo Server with the subscriber's identity, so it is resolved by
 * the query plan and authorised by the subgraphs exactly as the same query over HTTP.
 */
export function attachSubscriptionServer(options: SubscriptionServerOptions): SubscriptionServer {
  const path = options.path ?? '/graphql';
  const logger = options.logger.child({ component: 'subscriptions' });
  const hub = options.eventBus ? new OrderEventHub(options.eventBus, logger) : undefined;
  const connections = new Map<ConnectionContext, Connection>();
  const clientAddressOf =
    options.clientAddress ?? ((request: IncomingMessage) => request.socket.remoteAddress ?? 'unknown');
  const streams = new Set<OrderSubscriptionStream>();
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

  const resolverFor =
    (planned: PlannedSubscription): OrderResolver =>
    async (orderId, change) => {
      const apollo = options.apollo();
      if (!apollo) throw subscriptionError(SubscriptionErrorCode.SUBSCRIPTIONS_UNAVAILABLE, 'the gateway is starting');
      const response = await apollo.executeOperation(
        { query: planned.plan.query, variables: planned.plan.variables(orderId) },
        { contextValue: planned.context },
      );
      if (response.body.kind !== 'single') throw new Error('incremental delivery is not expected here');
      return shapeResult(planned.plan, response.body.singleResult, change);
    };

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
      // Checked: the token is not needed again (expiry is timed below), so it is not kept per connection.
      delete (ctx as { connectionParams?: unknown }).connectionParams;
      const connection: Connection = { caller };
      const expiresInMs = authorization ? msUntilExpiry(authorization) : undefined;
      if (expiresInMs !== undefined) {
        // A connection lives no longer than the token it was opened with.
        connection.expiry = setTimeout(
          () => ctx.extra.socket.close(CloseCode.Forbidden, 'Token expired'),
          Math.min(expiresInMs, 2 ** 31 - 1),
        );
        connection.expiry.unref();
      }
      connections.set(ctx, connection);
      return true;
    },
    onClose: (ctx) => {
      const connection = connections.get(ctx);
      if (connection?.expiry) clearTimeout(connection.expiry);
      connections.delete(ctx);
    },
    onSubscribe: async (ctx, _id, payload) => {
      const connection = connections.get(ctx);
      if (!connection) return [subscriptionError(SubscriptionErrorCode.UNAUTHENTICATED, 'connection not initialised')];
      if (!hub || closing) {
        return [
          subscriptionError(
            SubscriptionErrorCode.SUBSCRIPTIONS_UNAVAILABLE,
            closing ? 'the gateway is shutting down' : 'subscriptions are not available: this gateway has no event bus',
          ),
        ];
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
      const schema = options.schema();
      if (!schema || !options.apollo()) {
        return [subscriptionError(SubscriptionErrorCode.SUBSCRIPTIONS_UNAVAILABLE, 'the gateway is starting')];
      }
      const { guard } = options;
      if (guard) {
        const { refusal } = await guard.takeRateBudget('subscription', connection.caller, ctx.extra.clientAddress);
        if (refusal) return [refusal.error];
        const refused = typeof payload.query === 'string' ? guard.checkSource(payload.query) : undefined;
        if (refused) return [refused];
      }
      const plan = planSubscription(schema, payload);
      if (Array.isArray(plan)) return plan;
      const operation = getOperationAST(plan.document, payload.operationName ?? undefined);
      const exceeded = operation && guard?.checkOperation(schema, plan.document, operation, payload.variables ?? {});
      if (exceeded) return [exceeded];
      const refused = authorize(plan, connection.caller);
      if (refused) return [refused];
      return {
        schema,
        document: plan.document,
        operationName: payload.operationName,
        variableValues: payload.variables,
        contextValue: new PlannedSubscription(plan, {
          caller: connection.caller,
          requestId: randomUUID(),
          clientAddress: ctx.extra.clientAddress,
          transport: 'websocket',
        }),
      } satisfies ExecutionArgs;
    },
    subscribe: (args): AsyncIterable<ExecutionResult> | ExecutionResult => {
      const planned = args.contextValue;
      if (!(planned instanceof PlannedSubscription) || !hub) {
        return { errors: [new GraphQLError('subscription was not planned')] };
      }
      const stream: OrderSubscriptionStream = new OrderSubscriptionStream({
        plan: planned.plan,
        hub,
        resolve: resolverFor(planned),
        logger,
        logBindings: { requestId: planned.context.requestId, field: planned.plan.field },
        onEnd: () => streams.delete(stream),
      });
      streams.add(stream);
      return stream;
    },
  });

  const connectionInitWaitMs = options.connectionInitWaitTimeoutMs ?? 5_000;
  const internalError = (socket: WebSocket, error: unknown) => {
    logger.error({ err: error }, 'internal error in a WebSocket connection');
    const reason = options.production
      ? 'Internal server error'
      : limitCloseReason(error instanceof Error ? error.message : String(error));
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
  const keepAlive =
    keepAliveMs > 0 && Number.isFinite(keepAliveMs)
      ? setInterval(() => {
          for (const client of wss.clients) {
            if (client.readyState !== client.OPEN) continue;
            if (awaitingPong.has(client)) {
              client.terminate();
              continue;
            }
            awaitingPong.add(client);
            client.ping();
          }
        }, keepAliveMs).unref()
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
    const closed = server.opened(new GraphqlWsTransport(socket, internalError), extra);
    socket.once('close', (code: number, reason: Buffer) => {
      clearTimeout(extra.initWait);
      closed(code, String(reason)).catch((error: unknown) =>
        logger.error({ err: error }, 'could not end the subscriptions of a closed socket'),
      );
    });
  });

  return {
    activeSubscriptions: () => streams.size,
    connections: () => connections.size,
    listenerCounts: () => hub?.counts() ?? { orders: 0, orderListeners: 0, feedListeners: 0, tailing: false },
    tailsStarted: () => hub?.tailsStarted ?? 0,
    close: async () => {
      if (closing) return;
      closing = true;
      clearInterval(keepAlive);
      const clients = [...wss.clients];
      for (const client of clients) client.close(1001, 'Going away');
      await waitForClose(clients, options.closeGraceMs ?? 1_000);
      // The upgrade listener stays: until the HTTP server closes too, new sockets get 503.
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      // Whatever graphql-ws has not ended yet (it ends a socket's subscriptions when it closes).
      await Promise.all([...streams].map((stream) => stream.return()));
      await hub?.close();
    },
  };
}

/** orderUpdates is the kitchen's feed; orderStatusChanged needs a logged-in user (the subgraph checks which). */
function authorize(plan: SubscriptionPlan, caller: Caller): GraphQLError | undefined {
  if (caller.kind !== 'user') {
    return subscriptionError(
      SubscriptionErrorCode.UNAUTHENTICATED,
      `You must be logged in to subscribe to ${plan.field}`,
    );
  }
  if (plan.field === 'orderUpdates' && caller.role !== 'STAFF' && caller.role !== 'ADMIN') {
    return subscriptionError(SubscriptionErrorCode.FORBIDDEN, 'Only staff may subscribe to orderUpdates');
  }
  return undefined;
}

/** Milliseconds until a verified "Bearer <jwt>" expires, from its `exp` claim. */
function msUntilExpiry(authorization: string): number | undefined {
  const payload = authorization.slice('Bearer '.length).split('.')[1];
  if (!payload) return undefined;
  try {
    const { exp } = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof exp === 'number' ? Math.max(0, exp * 1000 - Date.now()) : undefined;
  } catch {
    return undefined;
  }
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
