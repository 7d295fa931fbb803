import { z } from 'zod';
import {
  activeKeyIn,
  encryptionActiveKeyId,
  encryptionKeys,
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

/** Every variable the orders subgraph reads. Parsed once, at start-up; nothing else reads process.env. */
export const OrdersConfigSchema = z
  .object({
    NODE_ENV: nodeEnv,
    LOG_LEVEL: logLevel,
    ORDERS_PORT: port(4003),
    HOST: z.string().default('127.0.0.1'),
    ORDERS_DATABASE_URL: postgresUrl,
    /** Streaming replicas that may serve reads a little stale (see withReadReplicas); empty: none. */
    ORDERS_DATABASE_REPLICA_URLS: postgresUrlList,
    ...replicaLagEnv,
    INTERNAL_TOKEN_SECRET: secret(32),
    /** Where prices come from: orders asks meals, never its database. */
    MEALS_SUBGRAPH_URL: z.url({
      protocol: /^https?$/,
      error: 'is required (the meals subgraph GraphQL URL, e.g. http://127.0.0.1:4002/graphql)',
    }),
    /** Comma-separated `keyId:base64key` pairs, each 32 bytes: the delivery address at rest. Old keys stay to read old rows. */
    ORDERS_ENCRYPTION_KEYS: encryptionKeys,
    /** The key id new addresses are encrypted with; one of ORDERS_ENCRYPTION_KEYS. The worker re-encrypts older rows. */
    ORDERS_ENCRYPTION_ACTIVE_KEY_ID: encryptionActiveKeyId,
    /** Flat delivery charge in minor units of the menu's currency. */
    ORDERS_DELIVERY_FEE_MINOR: z.coerce.number().int().min(0).default(299),
    /** An order still unpaid this long after it was placed is cancelled by the worker. */
    ORDERS_UNPAID_TIMEOUT_SECONDS: z.coerce.number().int().min(60).default(900),
    /**
     * placeOrder's idempotency keys are remembered this long (then the worker forgets them, and a key
     * may place a new order): long enough for any client's retries, short enough to keep the table small.
     */
    ORDERS_IDEMPOTENCY_KEY_RETENTION_HOURS: z.coerce
      .number()
      .int()
      .min(1)
      .max(24 * 30)
      .default(24),
    /** The worker makes monthly partitions of the orders tables for this month and this many ahead. */
    ORDERS_PARTITION_MONTHS_AHEAD: z.coerce.number().int().min(1).max(36).default(3),
    /**
     * Unset (the default): every partition is kept. N: the worker DETACHes the monthly partitions of
     * months that ended more than N months ago, keeping them as plain tables to archive: never drops.
     */
    ORDERS_PARTITION_RETENTION_MONTHS: z.coerce.number().int().min(1).optional(),
    /** Events and jobs (the worker). a Redis (REDIS_URL or REDIS_CLUSTER_NODES) is required by the worker process; see worker-main.ts. */
    ...messagingEnv,
    /** The worker process's /healthz, /readyz and /metrics (worker-main.ts). */
    ORDERS_WORKER_PORT: port(9464),
    ...tracingEnv,
  })
  .superRefine(oneRedisMode)
  .superRefine(activeKeyIn('ORDERS_ENCRYPTION_KEYS', 'ORDERS_ENCRYPTION_ACTIVE_KEY_ID'));

export type OrdersConfig = z.infer<typeof OrdersConfigSchema>;

export function loadOrdersConfig(env: Record<string, string | undefined> = process.env): OrdersConfig {
  return loadConfig('orders', OrdersConfigSchema, env);
}
