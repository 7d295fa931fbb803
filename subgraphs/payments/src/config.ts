import { z } from 'zod';
import {
  loadConfig,
  messagingEnv,
  oneRedisMode,
  tracingEnv,
  logLevel,
  nodeEnv,
  port,
  postgresUrl,
  postgresUrlList,
  replicaLagEnv,
  secret,
} from '@food/platform';

/** Every variable the payments subgraph reads. Parsed once, at start-up; nothing else reads process.env. */
export const PaymentsConfigSchema = z
  .object({
    NODE_ENV: nodeEnv,
    LOG_LEVEL: logLevel,
    PAYMENTS_PORT: port(4004),
    HOST: z.string().default('127.0.0.1'),
    PAYMENTS_DATABASE_URL: postgresUrl,
    /** Streaming replicas that may serve reads a little stale (see withReadReplicas); empty: none. */
    PAYMENTS_DATABASE_REPLICA_URLS: postgresUrlList,
    ...replicaLagEnv,
    INTERNAL_TOKEN_SECRET: secret(32),
    /** Where order totals come from: payments asks orders, never its database. */
    ORDERS_SUBGRAPH_URL: z.url({
      protocol: /^https?$/,
      error: 'is required (the orders subgraph GraphQL URL, e.g. http://127.0.0.1:4003/graphql)',
    }),
    PAYMENT_PROVIDER: z.enum(['sandbox']).default('sandbox'),
    /** A payment the provider gave no answer for is asked about again (same key) after this long. */
    PAYMENTS_CONFIRM_AFTER_SECONDS: z.coerce.number().int().min(1).max(3_600).default(30),
    /** Events and jobs (the worker). a Redis (REDIS_URL or REDIS_CLUSTER_NODES) is required by the worker process; see worker-main.ts. */
    ...messagingEnv,
    /** The worker process's /healthz, /readyz and /metrics (worker-main.ts). */
    PAYMENTS_WORKER_PORT: port(9465),
    ...tracingEnv,
  })
  .superRefine(oneRedisMode);

export type PaymentsConfig = z.infer<typeof PaymentsConfigSchema>;

export function loadPaymentsConfig(env: Record<string, string | undefined> = process.env): PaymentsConfig {
  return loadConfig('payments', PaymentsConfigSchema, env);
}
