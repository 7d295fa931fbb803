import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ApolloServer } from '@apollo/server';
import { CloseCode, type Context } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
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
  clientAddress: string;
  expiry?: NodeJS.Timeout;
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
  const connections = new Map<Context, Connection>();
  const clientAddressOf =
    options.clientAddress ?? ((request: IncomingMessage) => request.socket.remoteAddress ?? 'unknown');
  const streams = new Set<OrderSubscriptionStream>();
  let closing = false;

  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPayloadBytes ?? 64 * 1024 });
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

  useServer(
    {
      connectionInitWaitTimeout: options.connectionInitWaitTimeoutMs ?? 5_000,
      isProd: options.production,
      onConnect: async (ctx) => {
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
        const connection: Connection = { caller, clientAddress: clientAddressOf(ctx.extra.request) };
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
        if (!connection)
          return [subscriptionError(SubscriptionErrorCode.UNAUTHENTICATED, 'connection not initialised')];
        if (!hub || closing) {
          return [
            subscriptionError(
              SubscriptionErrorCode.SUBSCRIPTIONS_UNAVAILABLE,
              closing
                ? 'the gateway is shutting down'
                : 'subscriptions are not available: this gateway has no event bus',
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
          const { refusal } = await guard.takeRateBudget('subscription', connection.caller, connection.clientAddress);
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
            clientAddress: connection.clientAddress,
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
          logger: logger.child({ requestId: planned.context.requestId, field: planned.plan.field }),
          onEnd: () => streams.delete(stream),
        });
        streams.add(stream);
        return stream;
      },
    },
    wss,
    options.keepAliveMs ?? 12_000,
  );

  return {
    activeSubscriptions: () => streams.size,
    connections: () => connections.size,
    listenerCounts: () => hub?.counts() ?? { orders: 0, orderListeners: 0, feedListeners: 0, tailing: false },
    tailsStarted: () => hub?.tailsStarted ?? 0,
    close: async () => {
      if (closing) return;
      closing = true;
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
