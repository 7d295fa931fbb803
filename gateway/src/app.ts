import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Supergraph } from '@apollo/federation-internals';
import { ApolloServer } from '@apollo/server';
import {
  createLogger,
  formatError,
  GraphQLRequestTelemetry,
  InternalTokens,
  REQUEST_ID_HEADER,
  sampledGauge,
  serveGraphQL,
  JWKS_PATH,
  remoteUserKeys,
  UserTokenVerifier,
  type EventBus,
  type Logger,
  type RunningHttpService,
} from '@food/platform';
import { authenticate } from './auth.js';
import { supergraphPath } from './compose/compose.js';
import type { GatewayConfig } from './config.js';
import type { GatewayContext } from './context.js';
import {
  budgetSpentBy,
  clientAddress,
  createEdge,
  guardHttpOperations,
  keepResponses,
  readYourWritesPlugin,
  responseCachePlanOf,
  responseCacheRulesOf,
  serveCachedResponses,
} from './edge/index.js';
import { GRAPHIQL_ASSETS_PATH, graphiqlAssets, graphiqlLandingPage } from './ide/graphiql.js';
import { followSessionRevocations, RevokedSessions, sessionCheckedTokens } from './session-revocations.js';
import { SubgraphDataSource } from './subgraph-data-source.js';
import { SupergraphGateway } from './execution/supergraph-gateway.js';
import { refuseSubscriptionsOverHttp } from './subscriptions/http-guard.js';
import { liveDeclarationProblems } from './subscriptions/checks.js';
import { serveHttpSubscriptions } from './subscriptions/http-streams.js';
import { multipartSubscriptions } from './subscriptions/multipart.js';
import { readLiveFields } from './subscriptions/declarations.js';
import { SubscriptionEngine } from './subscriptions/engine.js';
import type { EventHubCounts } from './subscriptions/hub.js';
import { LiveExecutor } from './subscriptions/executor.js';
import { attachSubscriptionServer, type SubscriptionServer } from './subscriptions/server.js';
import { serverSentEvents } from './subscriptions/sse.js';

export interface GatewayOptions {
  /**
   * Where events come from, for the subscriptions the subgraphs declare, over every transport (e.g. `messaging.bus`). The
   * gateway tails each stream they follow once per process, from its first subscriber until `close`;
   * the bus itself stays the caller's (never closed here). Without it, every subscribe is refused
   * with SUBSCRIPTIONS_UNAVAILABLE.
   */
  eventBus?: EventBus;
}

export interface RunningGateway extends RunningHttpService {
  /** Where each subgraph is called, after overrides. */
  subgraphUrls: Record<string, string>;
  /** Subscriptions, over every transport: counts for metrics and tests (`close` is part of the gateway's). */
  subscriptions: SubscriptionCounts;
}

export interface SubscriptionCounts {
  /** Subscriptions running (streams not yet ended). */
  activeSubscriptions(): number;
  /** Acknowledged graphql-ws connections. */
  connections(): number;
  /** Open subscription responses over HTTP (SSE and multipart). */
  httpStreams(): number;
  /** The event registry's listeners and tails. */
  listenerCounts(): EventHubCounts;
  /** Groups of subscribers that share one resolution per event. */
  topics(): number;
  /** How many times a stream's tail was started (one per stream and process, plus retries after a failure). */
  tailsStarted(): number;
}

/**
 * Starts the gateway: the supergraph over HTTP on /graphql, with health and readiness, and its
 * subscriptions on the same port and path over WebSockets (graphql-ws), Server-Sent Events and
 * multipart HTTP, all three from one subscription engine.
 */
export async function startGateway(
  config: GatewayConfig,
  logger: Logger = createLogger('gateway', config.LOG_LEVEL),
  options: GatewayOptions = {},
): Promise<RunningGateway> {
  const supergraphSdl = readFileSync(config.SUPERGRAPH_PATH ?? fileURLToPath(supergraphPath), 'utf8');
  const supergraph = Supergraph.build(supergraphSdl);
  // The subgraphs, as the supergraph names them: the gateway knows no other list.
  const subgraphNames = supergraph.subgraphs().names();
  const unknown = Object.keys(config.subgraphUrls).filter((name) => !subgraphNames.includes(name));
  if (unknown.length) {
    throw new Error(
      `${unknown.map((name) => `${name.toUpperCase()}_SUBGRAPH_URL`).join(', ')} names no subgraph of the supergraph ` +
        `(its subgraphs: ${subgraphNames.join(', ')})`,
    );
  }
  const liveProblems = liveDeclarationProblems(supergraphSdl, supergraph);
  if (liveProblems.length) {
    throw new Error(`the supergraph's @subscribe declarations do not hold:\n  - ${liveProblems.join('\n  - ')}`);
  }
  const internalTokens = new InternalTokens(config.INTERNAL_TOKEN_SECRET);
  const verifier = new UserTokenVerifier({
    keys: remoteUserKeys(jwksUrl(config, supergraph), {
      cooldownSeconds: config.JWKS_REFRESH_COOLDOWN_SECONDS,
      cacheMaxAgeSeconds: config.JWKS_CACHE_MAX_AGE_SECONDS,
    }),
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    maxTokenAgeSeconds: config.JWT_MAX_AGE_SECONDS,
  });
  // Revoked sessions' tokens are refused from the moment their event arrives (from every users
  // replica, through the bus); without a bus, only their expiry ends them.
  const revokedSessions = new RevokedSessions();
  const userTokens = sessionCheckedTokens(verifier, revokedSessions);
  const revocations = options.eventBus
    ? await followSessionRevocations(options.eventBus, revokedSessions, config.JWT_MAX_AGE_SECONDS, logger)
    : undefined;
  const stopRevocations = async () => {
    await revocations?.close();
    revokedSessions.close();
  };
  const edge = await createEdge(config, supergraph, logger, options.eventBus).catch(async (error: unknown) => {
    await stopRevocations();
    throw error;
  });
  const production = config.NODE_ENV === 'production';
  const subgraphUrls: Record<string, string> = {};
  // One data source per subgraph, shared by queries, mutations and subscriptions.
  const dataSources = new Map<string, SubgraphDataSource>();
  for (const { name, url } of supergraph.subgraphs()) {
    const target = config.subgraphUrls[name] ?? url;
    if (!target) throw new Error(`no URL for subgraph ${name}`);
    subgraphUrls[name] = target;
    dataSources.set(
      name,
      new SubgraphDataSource({
        name,
        url: target,
        timeoutMs: config.SUBGRAPH_TIMEOUT_MS,
        internalTokens,
        logger,
        entityCache: edge.entityCache,
        entitiesChanged: edge.entitiesChanged,
      }),
    );
  }
  const { responseCache } = edge;
  const cacheRules = responseCache && responseCacheRulesOf(supergraph);
  const gateway: SupergraphGateway<GatewayContext> = new SupergraphGateway<GatewayContext>({
    supergraph,
    supergraphSdl,
    services: dataSources,
    // The response cache: which queries it may keep (planned with their entities' ids), and their answers.
    ...(responseCache &&
      cacheRules && {
        advice: (document, operation) => {
          const plan = responseCachePlanOf(cacheRules, gateway.apiSchema, document, operation);
          return plan && { ...plan, tagged: cacheRules.idEntities };
        },
        keepable: {
          mark: () => responseCache.mark(),
          keep: (context, answer) => {
            if (context.transport === 'http') context.keep = answer;
          },
        },
      }),
  });
  const telemetry = new GraphQLRequestTelemetry('gateway', logger);
  const subscriptionLogger = logger.child({ component: 'subscriptions' });
  const engine = new SubscriptionEngine({
    schema: () => gateway.apiSchema,
    live: {
      fields: readLiveFields(supergraphSdl),
      executor: new LiveExecutor(gateway, subscriptionLogger),
    },
    eventBus: options.eventBus,
    guard: edge.guard,
    maxEntities: config.GATEWAY_MAX_SUBSCRIPTION_ENTITIES,
    logger: subscriptionLogger,
  });
  // SSE and multipart HTTP: served on /graphql before Apollo Server, which cannot stream them.
  const httpSubscriptions = serveHttpSubscriptions({
    engine,
    userTokens,
    revokedSessions,
    logger: subscriptionLogger,
    protocols: [serverSentEvents(), multipartSubscriptions()],
    maxStreamsPerAddress: config.GATEWAY_MAX_HTTP_SUBSCRIPTIONS_PER_ADDRESS,
    clientAddress: (request) => clientAddress(request, edge.trustProxy),
    allowsOrigin: edge.allowsOrigin,
  });
  let subscriptions: SubscriptionServer | undefined;
  // A gateway that fails to start (port taken) must not leave its Redis connection open.
  const http = await serveGraphQL<GatewayContext>({
    name: 'gateway',
    logger,
    port: config.GATEWAY_PORT,
    host: config.HOST,
    cors: edge.cors,
    beforeApolloServer: [httpSubscriptions.handle],
    telemetry,
    ...(responseCache && {
      preempt: serveCachedResponses({
        cache: responseCache,
        userTokens,
        guard: edge.guard,
        readYourWrites: edge.readYourWrites,
        trustProxy: edge.trustProxy,
        telemetry,
      }),
    }),
    production,
    // GraphiQL, served from this process (no CDN), in development only.
    staticFiles: production
      ? {}
      : Object.fromEntries(
          Object.entries(graphiqlAssets).map(([name, asset]) => [`${GRAPHIQL_ASSETS_PATH}/${name}`, asset]),
        ),
    onHttpServer: (httpServer) => {
      subscriptions = attachSubscriptionServer({
        httpServer,
        engine,
        userTokens,
        revokedSessions,
        logger,
        maxSubscriptionsPerConnection: config.GATEWAY_MAX_SUBSCRIPTIONS_PER_CONNECTION,
        production,
        clientAddress: (request) => clientAddress(request, edge.trustProxy),
        allowsOrigin: edge.allowsOrigin,
      });
    },
    createServer: (plugins) =>
      new ApolloServer<GatewayContext>({
        gateway,
        introspection: !production,
        // In production, errors do not suggest field names ("Did you mean ...?"): no schema by guessing.
        hideSchemaDetailsFromClientErrors: production,
        includeStacktraceInErrorResponses: false,
        persistedQueries: edge.persistedQueries,
        csrfPrevention: config.CSRF_PREVENTION,
        // The process entry owns SIGINT/SIGTERM; Apollo's own handlers would race it.
        stopOnTerminationSignals: false,
        plugins: [
          ...plugins,
          ...(production ? [] : [graphiqlLandingPage<GatewayContext>()]),
          refuseSubscriptionsOverHttp<GatewayContext>(),
          guardHttpOperations(edge.guard, edge.readYourWrites),
          readYourWritesPlugin(edge.readYourWrites),
          ...(responseCache ? [keepResponses(responseCache)] : []),
        ],
        formatError: (formatted, error) =>
          formatError(formatted, error, (unexpected) => logger.error({ err: unexpected }, 'unexpected error')),
      }),
    context: async (req) => ({
      caller: await authenticate(req.headers, userTokens),
      // Set by the HTTP shell: the client's own id when it sent a plain one, else a new one.
      requestId: req.headers[REQUEST_ID_HEADER] as string,
      clientAddress: clientAddress(req, edge.trustProxy),
      transport: 'http',
      rateBudgetSpent: budgetSpentBy(req),
    }),
    dependencies: Object.fromEntries(
      subgraphNames.map((name) => [name, () => checkSubgraphReady(subgraphUrls[name] ?? '')]),
    ),
  }).catch(async (error: unknown) => {
    await edge.close();
    await stopRevocations();
    throw error;
  });
  const ws = subscriptions;
  if (!ws) throw new Error('the HTTP shell did not hand over its server for WebSockets');
  const untrackGauges = [
    subscriptionGauges.active.track(async () => [[{}, engine.activeSubscriptions()]]),
    subscriptionGauges.connections.track(async () => [[{}, ws.connections()]]),
    subscriptionGauges.httpStreams.track(async () => [[{}, httpSubscriptions.streams()]]),
  ];
  logger.info({ url: http.url, subgraphs: subgraphUrls, subscriptions: Boolean(options.eventBus) }, 'gateway ready');
  return {
    ...http,
    subgraphUrls,
    subscriptions: {
      activeSubscriptions: () => engine.activeSubscriptions(),
      connections: ws.connections,
      httpStreams: httpSubscriptions.streams,
      listenerCounts: () => engine.listenerCounts(),
      topics: () => engine.topicCount(),
      tailsStarted: () => engine.tailsStarted(),
    },
    // Subscriptions first (WebSocket clients get 1001, SSE and multipart streams end as their
    // protocol asks a client to subscribe again, the tail stops), then HTTP finishes in-flight requests,
    // which would otherwise wait for the streams.
    close: async () => {
      for (const untrack of untrackGauges) untrack();
      engine.beginClosing();
      await Promise.all([ws.close(), httpSubscriptions.close()]);
      // Whatever a transport has not ended yet, and the tails.
      await engine.close();
      await http.close();
      await edge.close();
      await stopRevocations();
    },
  };
}

/** Live subscriptions, WebSocket connections and HTTP streams, read at scrape time (summed over gateways in a process). */
const subscriptionGauges = {
  active: sampledGauge('gateway_active_subscriptions', 'Subscriptions running, over every transport.', []),
  connections: sampledGauge('gateway_websocket_connections', 'Acknowledged graphql-ws connections.', []),
  httpStreams: sampledGauge(
    'gateway_http_subscription_streams',
    'Open subscription responses over HTTP (SSE and multipart).',
    [],
  ),
};

/**
 * Where the users service publishes its public keys: USERS_JWKS_URL, else `/.well-known/jwks.json` on
 * the users subgraph's URL (its override, else the supergraph's).
 */
function jwksUrl(config: GatewayConfig, supergraph: Supergraph): URL {
  if (config.USERS_JWKS_URL) return new URL(config.USERS_JWKS_URL);
  const users = config.subgraphUrls.users ?? supergraph.subgraphs().get('users')?.url;
  if (!users) throw new Error('USERS_JWKS_URL is required: the supergraph has no users subgraph to take it from');
  return new URL(JWKS_PATH, users);
}

/** A subgraph is ready when its own /readyz says so (its database is reachable). */
async function checkSubgraphReady(graphqlUrl: string): Promise<void> {
  if (!graphqlUrl) throw new Error('not configured');
  const response = await fetch(new URL('/readyz', graphqlUrl), { signal: AbortSignal.timeout(1_500) });
  if (!response.ok) throw new Error(`readyz answered ${response.status}`);
}
