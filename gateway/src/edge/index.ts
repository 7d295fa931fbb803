import type { Supergraph } from '@apollo/federation-internals';
import {
  connectRedis,
  redisTargetOf,
  type CorsOptions,
  type EntityReference,
  type EventBus,
  type EventSubscription,
  type Logger,
  type RedisConnection,
  type RedisTarget,
} from '@food/platform';
import type { GatewayConfig } from '../config.js';
import { cacheScopesOf } from './cache-control.js';
import { compileTrustProxy } from './client-address.js';
import { EntityCache, InMemoryEntityCacheStore, RedisEntityCacheStore } from './entity-cache.js';
import { invalidateOnEvents } from './entity-invalidation.js';
import { createEdgeMetrics } from './metrics.js';
import { ResponseCache } from './response-cache.js';
import { broadcastChanges, type ChangeBroadcast } from './change-broadcast.js';
import { OperationGuard } from './operation-guard.js';
import { OperationSafelist, RedisPersistedQueryCache, type PersistedQueryCache } from './persisted-queries.js';
import { InMemoryRateLimitStore, RateLimiter, RedisRateLimitStore } from './rate-limit.js';
import { InMemoryRecentWritesStore, ReadYourWrites, RedisRecentWritesStore } from './read-your-writes.js';

export { clientAddress } from './client-address.js';
export { keepResponses, serveCachedResponses, budgetSpentBy } from './cached-responses.js';
export { responseCachePlanOf, responseCacheRulesOf } from './response-cache.js';
export { guardHttpOperations } from './http-plugin.js';
export { readYourWritesPlugin } from './read-your-writes.js';
export type { OperationGuard } from './operation-guard.js';

/** Response headers a browser's script may read: the rate budget and the request id. */
const exposedHeaders = ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset', 'RateLimit-Policy', 'Retry-After'];

/** Everything the gateway puts between a client and the subgraphs, built from its configuration. */
export interface Edge {
  guard: OperationGuard;
  entityCache?: EntityCache;
  /** Whole responses of this process (with an event bus and RESPONSE_CACHE_MAX_MB above 0). */
  responseCache?: ResponseCache;
  /** Drops changed entities from every cache: the entity cache (every replica) and this process's responses. */
  entitiesChanged(entities: EntityReference[]): Promise<void>;
  /** Apollo Server's `persistedQueries` option. */
  persistedQueries: false | { cache?: PersistedQueryCache; ttl: number | null };
  cors?: CorsOptions;
  /** Whether a WebSocket upgrade from this Origin is allowed (browsers send it; other clients may not). */
  allowsOrigin(origin: string | undefined): boolean;
  trustProxy: (address: string, hop: number) => boolean;
  /** Which callers wrote within the replica lag bound: their reads go to the primaries. */
  readYourWrites: ReadYourWrites;
  close(): Promise<void>;
}

/**
 * Builds the edge. With a Redis (REDIS_URL or REDIS_CLUSTER_NODES), rate budgets, persisted queries and the entity cache live in Redis
 * and are shared by every replica; without it (development), in this process's memory. The entity
 * types cached are the supergraph's `@cacheControl(scope: PUBLIC | PRIVATE)` ones (or
 * ENTITY_CACHE_TYPES / ENTITY_CACHE_PRIVATE_TYPES); private ones only with `eventBus`, whose events
 * drop the entities they declare changed.
 */
export async function createEdge(
  config: GatewayConfig,
  supergraph: Supergraph,
  logger: Logger,
  eventBus?: EventBus,
): Promise<Edge> {
  const declared = cacheScopesOf(supergraph);
  const sharedTypes = config.ENTITY_CACHE_TYPES ?? [...declared.PUBLIC];
  const declaredPrivate = config.ENTITY_CACHE_PRIVATE_TYPES ?? [...declared.PRIVATE];
  const sharedPrivate = sharedTypes.filter((type) => declaredPrivate.includes(type));
  if (sharedPrivate.length > 0) {
    // One answer for every caller of a type whose fields depend on the caller would leak them.
    throw new Error(`ENTITY_CACHE_TYPES lists private entity types (${sharedPrivate.join(', ')})`);
  }
  const metrics = createEdgeMetrics();
  const prefix = config.REDIS_KEY_PREFIX;
  const target = redisTargetOf(config);
  const redis = target ? await connectEdgeRedis(target, prefix, logger) : undefined;

  const budgets = {
    windowSeconds: config.RATE_LIMIT_WINDOW_SECONDS,
    user: {
      query: config.RATE_LIMIT_USER_QUERIES,
      mutation: config.RATE_LIMIT_USER_MUTATIONS,
      subscription: config.RATE_LIMIT_USER_SUBSCRIPTIONS,
    },
    ip: {
      query: config.RATE_LIMIT_IP_QUERIES,
      mutation: config.RATE_LIMIT_IP_MUTATIONS,
      subscription: config.RATE_LIMIT_IP_SUBSCRIPTIONS,
    },
  };
  const anyBudget = [...Object.values(budgets.user), ...Object.values(budgets.ip)].some((limit) => limit > 0);
  const rateLimiter = anyBudget
    ? new RateLimiter(
        redis ? new RedisRateLimitStore(redis, logger) : new InMemoryRateLimitStore(),
        budgets,
        prefix,
        logger,
      )
    : undefined;

  const safelist =
    config.PERSISTED_QUERIES === 'safelist'
      ? OperationSafelist.fromFile(config.PERSISTED_QUERIES_MANIFEST!)
      : undefined;
  if (safelist) logger.info({ operations: safelist.size }, 'safelist mode: only listed operations are accepted');
  const persistedQueries: Edge['persistedQueries'] =
    config.PERSISTED_QUERIES === 'off'
      ? false
      : safelist
        ? { cache: safelist, ttl: null }
        : {
            cache: redis ? new RedisPersistedQueryCache(redis, prefix, logger) : undefined,
            ttl: config.PERSISTED_QUERIES_TTL_SECONDS,
          };

  const privateTypes = eventBus ? declaredPrivate : [];
  if (!eventBus && declaredPrivate.length > 0) {
    logger.warn(
      { types: declaredPrivate },
      'no event bus: private entity types are not cached (nothing would tell the cache they changed)',
    );
  }
  const entityCache =
    sharedTypes.length + privateTypes.length > 0
      ? new EntityCache({
          store: redis ? new RedisEntityCacheStore(redis) : new InMemoryEntityCacheStore(),
          types: new Set(sharedTypes),
          privateTypes: new Set(privateTypes),
          ttlSeconds: config.ENTITY_CACHE_TTL_SECONDS,
          keyPrefix: prefix,
          logger,
          hits: metrics.entityCacheHits,
          misses: metrics.entityCacheMisses,
        })
      : undefined;

  // Whole responses, in this process: only with the events that drop them on every replica.
  const responseCache =
    eventBus && config.RESPONSE_CACHE_MAX_MB > 0
      ? new ResponseCache({
          maxBytes: config.RESPONSE_CACHE_MAX_MB * 1024 * 1024,
          ttlSeconds: config.RESPONSE_CACHE_TTL_SECONDS,
          hits: metrics.responseCacheHits,
          misses: metrics.responseCacheMisses,
          stores: metrics.responseCacheStores,
          invalidations: metrics.responseCacheInvalidations,
        })
      : undefined;
  /** Drops changed entities here: the entity cache (shared by every replica) and this process's responses. */
  const dropHere = async (entities: EntityReference[]) => {
    responseCache?.invalidate(entities);
    await entityCache?.invalidate(entities);
  };

  let invalidation: EventSubscription | undefined;
  let broadcast: ChangeBroadcast | undefined;
  try {
    if (eventBus && ((entityCache && privateTypes.length > 0) || responseCache)) {
      // Every replica tails the events, so each drops what they announce itself.
      invalidation = await invalidateOnEvents(eventBus, dropHere, logger);
    }
    if (responseCache && redis && target) {
      broadcast = await broadcastChanges({
        target,
        publisher: redis,
        keyPrefix: prefix,
        logger,
        onRemote: (entities) => responseCache.invalidate(entities),
        onGap: () => responseCache.clear(),
      });
    }
  } catch (error) {
    await invalidation?.close();
    await redis?.quit().catch(() => redis.disconnect());
    throw error;
  }

  const origins = config.CORS_ORIGINS ?? (config.NODE_ENV === 'production' ? [] : ['*']);
  const anyOrigin = origins.includes('*');
  return {
    guard: new OperationGuard({
      bounds: {
        maxDepth: config.QUERY_MAX_DEPTH,
        maxAliases: config.QUERY_MAX_ALIASES,
        maxRootFields: config.QUERY_MAX_ROOT_FIELDS,
        maxCost: config.QUERY_MAX_COST,
        maxDocumentBytes: config.QUERY_MAX_DOCUMENT_BYTES,
      },
      safelist,
      rateLimiter,
      metrics,
    }),
    entityCache,
    responseCache,
    // A subgraph's report of its mutation's changes: dropped here, and told to the other replicas.
    entitiesChanged: async (entities) => {
      await Promise.all([dropHere(entities), broadcast?.publish(entities)]);
    },
    persistedQueries,
    cors: origins.length > 0 ? { origin: anyOrigin ? '*' : origins, exposedHeaders, maxAge: 600 } : undefined,
    allowsOrigin: (origin) => origin === undefined || anyOrigin || origins.includes(origin),
    trustProxy: compileTrustProxy(config.TRUST_PROXY),
    readYourWrites: new ReadYourWrites(
      redis ? new RedisRecentWritesStore(redis) : new InMemoryRecentWritesStore(),
      config.DATABASE_REPLICA_MAX_LAG_SECONDS,
      prefix,
      logger,
    ),
    close: async () => {
      await invalidation?.close();
      await broadcast?.close();
      await redis?.quit().catch(() => redis.disconnect());
    },
  };
}

/**
 * A Redis connection that fails fast: while Redis is unreachable, commands are refused at once (no
 * offline queue) and each check lets the request through, rather than making every request wait.
 * It auto-pipelines: the one-key commands of a batch (an entity fetch's, a request's buckets) go
 * out together, one pipeline per node on a cluster.
 */
async function connectEdgeRedis(target: RedisTarget, prefix: string, logger: Logger): Promise<RedisConnection> {
  const redis = connectRedis(target, {
    name: `${prefix}:gateway-edge`,
    whenDown: 'fail-fast',
    commandTimeout: 1_000,
    autoPipelining: true,
  });
  redis.on('error', (error: Error) => logger.warn({ err: error }, 'edge Redis connection error'));
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      logger.warn(
        'edge Redis not ready after 5 s: rate limits, persisted queries and the entity cache fail open until it is',
      );
      resolve();
    }, 5_000);
    redis.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  return redis;
}
