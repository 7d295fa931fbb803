import { z } from 'zod';
import {
  commaList,
  ConfigError,
  flag,
  integer,
  loadConfig,
  logLevel,
  messagingEnv,
  nodeEnv,
  oneRedisMode,
  port,
  replicaLagEnv,
  secret,
  tracingEnv,
} from '@food/platform';

/** A comma-separated list whose absence (undefined) means something other than an empty list. */
const optionalCommaList = z
  .string()
  .optional()
  .transform((value) => (value === undefined ? undefined : commaList().parse(value)));

/** Every variable the gateway reads; parsed once at start-up. */
export const GatewayConfigSchema = z
  .object({
    NODE_ENV: nodeEnv,
    LOG_LEVEL: logLevel,
    GATEWAY_PORT: port(4000),
    HOST: z.string().default('127.0.0.1'),
    /** The composed supergraph; defaults to the committed gateway/supergraph.graphql. */
    SUPERGRAPH_PATH: z.string().optional(),
    INTERNAL_TOKEN_SECRET: secret(32),
    /**
     * Users' access tokens are verified with the public keys the users service publishes (ES256, by
     * kid); the gateway holds no key that can sign one. Default: `/.well-known/jwks.json` on the users
     * subgraph's URL (USERS_SUBGRAPH_URL, else the supergraph's).
     */
    USERS_JWKS_URL: z.url({ protocol: /^https?$/ }).optional(),
    /** The JWKS is fetched again after this long, or sooner when a token names a kid it lacks. */
    JWKS_CACHE_MAX_AGE_SECONDS: integer(600, 1, 86_400),
    /** At most one fetch for an unknown kid per this many seconds (a flood of made-up kids costs one fetch). */
    JWKS_REFRESH_COOLDOWN_SECONDS: integer(30, 1, 3_600),
    JWT_ISSUER: z.string().min(1).default('food-users'),
    JWT_AUDIENCE: z.string().min(1).default('food-supergraph'),
    /** An access token issued longer ago than this is refused whatever its exp (the users service's TTL is at most 1 h). */
    JWT_MAX_AGE_SECONDS: integer(3_600, 60, 86_400),
    /** How long one subgraph fetch may take before the gateway gives up on it. */
    SUBGRAPH_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),
    /** GraphQL subscriptions one WebSocket connection may hold at once; one more is refused. */
    GATEWAY_MAX_SUBSCRIPTIONS_PER_CONNECTION: z.coerce.number().int().min(1).max(1_000).default(20),
    /** Entities one subscription may follow by its arguments (e.g. ids in a list); more is BAD_USER_INPUT. */
    GATEWAY_MAX_SUBSCRIPTION_ENTITIES: integer(100, 1, 10_000),
    /**
     * Subscriptions over HTTP (SSE and multipart responses) one client address may hold at once; one
     * more is refused (429, TOO_MANY_SUBSCRIPTIONS). Many users can share an address (carrier NAT,
     * an office proxy): the default leaves room for them.
     */
    GATEWAY_MAX_HTTP_SUBSCRIPTIONS_PER_ADDRESS: integer(100, 1, 100_000),
    /**
     * Events for subscriptions, from every replica's point of view the same Redis streams.
     * Required in production; in development without it, subscribe is refused (SUBSCRIPTIONS_UNAVAILABLE).
     */
    ...messagingEnv,

    // The edge: what one client may ask of the gateway. Every budget and bound has a safe default.
    /** Proxies allowed to name the client in X-Forwarded-For: false, true, a hop count, or addresses/subnets. */
    TRUST_PROXY: z.string().default('false'),
    /** Rate budgets refill smoothly over this window (token bucket). */
    RATE_LIMIT_WINDOW_SECONDS: integer(60, 1, 86_400),
    /** Operations one signed-in user may start per window, by kind (0: no limit). */
    RATE_LIMIT_USER_QUERIES: integer(600, 0, 1_000_000),
    RATE_LIMIT_USER_MUTATIONS: integer(120, 0, 1_000_000),
    RATE_LIMIT_USER_SUBSCRIPTIONS: integer(60, 0, 1_000_000),
    /** Operations one client address may start per window, by kind, signed in or not (0: no limit). */
    RATE_LIMIT_IP_QUERIES: integer(1_200, 0, 1_000_000),
    RATE_LIMIT_IP_MUTATIONS: integer(240, 0, 1_000_000),
    RATE_LIMIT_IP_SUBSCRIPTIONS: integer(120, 0, 1_000_000),
    QUERY_MAX_DEPTH: integer(10, 1, 1_000),
    QUERY_MAX_ALIASES: integer(30, 0, 10_000),
    QUERY_MAX_ROOT_FIELDS: integer(10, 1, 1_000),
    QUERY_MAX_COST: integer(5_000, 1, 100_000_000),
    QUERY_MAX_DOCUMENT_BYTES: integer(16_384, 64, 10_000_000),
    /** apq: automatic persisted queries; safelist: only the operations in PERSISTED_QUERIES_MANIFEST; off. */
    PERSISTED_QUERIES: z.enum(['apq', 'safelist', 'off']).default('apq'),
    /** An Apollo persisted query manifest (JSON); required by safelist mode. */
    PERSISTED_QUERIES_MANIFEST: z.string().optional(),
    /** How long an automatically persisted query is remembered. */
    PERSISTED_QUERIES_TTL_SECONDS: integer(86_400, 60, 31_536_000),
    /**
     * Entity types cached once for every caller (keyed by id, the same fields for everyone). Unset: the
     * object types the supergraph declares `@cacheControl(scope: PUBLIC)`; set, it replaces them (empty: none).
     */
    ENTITY_CACHE_TYPES: optionalCommaList,
    /**
     * Entity types cached per caller, for queries only (fields that depend on who asks), dropped on
     * every change reported by a subgraph or named by an event. Unset: the object types the supergraph
     * declares `@cacheControl(scope: PRIVATE)`; set, it replaces them (empty: none). Needs the event bus.
     */
    ENTITY_CACHE_PRIVATE_TYPES: optionalCommaList,
    ENTITY_CACHE_TTL_SECONDS: integer(60, 1, 86_400),
    /**
     * Whole query responses kept in each gateway process's memory (edge/response-cache.ts), at most
     * this many MiB; 0 turns it off. Needs the event bus: every replica drops what events change.
     */
    RESPONSE_CACHE_MAX_MB: integer(64, 0, 65_536),
    /** How long a kept response is answered at most, when no change drops it first. */
    RESPONSE_CACHE_TTL_SECONDS: integer(60, 1, 86_400),
    /**
     * The replica lag bound the services use: for this long after a caller's mutation, its reads go
     * to the primaries (read-your-writes, edge/read-your-writes.ts). Every process must share it.
     */
    ...replicaLagEnv,
    /** Origins browsers may call from (comma-separated, or *). Default: * in development, none in production. */
    CORS_ORIGINS: optionalCommaList,
    /** Apollo's CSRF prevention: refuse simple (non-preflighted) requests that could come from any page. */
    CSRF_PREVENTION: flag(true),
    ...tracingEnv,
  })
  .refine((config) => config.PERSISTED_QUERIES !== 'safelist' || config.PERSISTED_QUERIES_MANIFEST, {
    path: ['PERSISTED_QUERIES_MANIFEST'],
    message: 'is required when PERSISTED_QUERIES=safelist',
  })
  .superRefine(oneRedisMode);

/** `<NAME>_SUBGRAPH_URL`: where the gateway calls the subgraph NAME of the supergraph instead of its URL there. */
const SUBGRAPH_URL_VARIABLE = /^([A-Z0-9_]+)_SUBGRAPH_URL$/;

export type GatewayConfig = z.infer<typeof GatewayConfigSchema> & {
  /**
   * Per-subgraph overrides of the URLs in the supergraph (e.g. Kubernetes service names), by subgraph
   * name (lower case), from every `<NAME>_SUBGRAPH_URL` set. The gateway refuses one that names no
   * subgraph of its supergraph.
   */
  subgraphUrls: Record<string, string>;
};

export function loadGatewayConfig(env: Record<string, string | undefined> = process.env): GatewayConfig {
  const urls = z.record(z.string(), z.url({ protocol: /^https?$/ }));
  const named = Object.entries(env).flatMap(([name, value]) => {
    const subgraph = SUBGRAPH_URL_VARIABLE.exec(name)?.[1];
    return subgraph && value ? [[subgraph.toLowerCase(), value] as const] : [];
  });
  const config = loadConfig('gateway', GatewayConfigSchema, env);
  const subgraphUrls = urls.safeParse(Object.fromEntries(named));
  if (!subgraphUrls.success) {
    throw new ConfigError(
      subgraphUrls.error.issues
        .map(
          (issue) =>
            `gateway: invalid configuration: ${String(issue.path[0]).toUpperCase()}_SUBGRAPH_URL: ${issue.message}`,
        )
        .join('\n'),
    );
  }
  return { ...config, subgraphUrls: subgraphUrls.data };
}
