import { z } from 'zod';
import { loadConfig, logLevel, messagingEnv, nodeEnv, port, secret } from '@food/platform';
import { subgraphNames, type SubgraphName } from './compose/compose.js';

const optionalUrl = z.url({ error: 'must be a URL' }).optional();

/** Every variable the gateway reads; parsed once at start-up. */
export const GatewayConfigSchema = z.object({
  NODE_ENV: nodeEnv,
  LOG_LEVEL: logLevel,
  GATEWAY_PORT: port(4000),
  HOST: z.string().default('127.0.0.1'),
  /** The composed supergraph; defaults to the committed gateway/supergraph.graphql. */
  SUPERGRAPH_PATH: z.string().optional(),
  INTERNAL_TOKEN_SECRET: secret(32),
  JWT_SECRET: secret(32),
  JWT_ISSUER: z.string().min(1).default('food-users'),
  JWT_AUDIENCE: z.string().min(1).default('food-supergraph'),
  /** Per-subgraph overrides of the URLs in the supergraph (e.g. Kubernetes service names). */
  USERS_SUBGRAPH_URL: optionalUrl,
  MEALS_SUBGRAPH_URL: optionalUrl,
  ORDERS_SUBGRAPH_URL: optionalUrl,
  PAYMENTS_SUBGRAPH_URL: optionalUrl,
  /** How long one subgraph fetch may take before the gateway gives up on it. */
  SUBGRAPH_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),
  /** GraphQL subscriptions one WebSocket connection may hold at once; one more is refused. */
  GATEWAY_MAX_SUBSCRIPTIONS_PER_CONNECTION: z.coerce.number().int().min(1).max(1_000).default(20),
  /**
   * Order events for subscriptions, from every replica's point of view the same Redis streams.
   * Required in production; in development without it, subscribe is refused (SUBSCRIPTIONS_UNAVAILABLE).
   */
  ...messagingEnv,
});

export type GatewayConfig = z.infer<typeof GatewayConfigSchema>;

export function loadGatewayConfig(env: Record<string, string | undefined> = process.env): GatewayConfig {
  return loadConfig('gateway', GatewayConfigSchema, env);
}

export function subgraphUrlOverrides(config: GatewayConfig): Partial<Record<SubgraphName, string>> {
  const overrides: Partial<Record<SubgraphName, string>> = {};
  for (const name of subgraphNames) {
    const url = config[`${name.toUpperCase() as Uppercase<SubgraphName>}_SUBGRAPH_URL`];
    if (url) overrides[name] = url;
  }
  return overrides;
}
