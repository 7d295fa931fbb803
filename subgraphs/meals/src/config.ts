import { z } from 'zod';
import {
  loadConfig,
  logLevel,
  messagingEnv,
  oneRedisMode,
  nodeEnv,
  port,
  postgresUrl,
  postgresUrlList,
  replicaLagEnv,
  secret,
  tracingEnv,
} from '@food/platform';

/** Every variable the meals subgraph reads. Parsed once, at start-up; nothing else reads process.env. */
export const MealsConfigSchema = z
  .object({
    NODE_ENV: nodeEnv,
    LOG_LEVEL: logLevel,
    MEALS_PORT: port(4002),
    HOST: z.string().default('127.0.0.1'),
    MEALS_DATABASE_URL: postgresUrl,
    /** Streaming replicas that may serve reads a little stale (see withReadReplicas); empty: none. */
    MEALS_DATABASE_REPLICA_URLS: postgresUrlList,
    ...replicaLagEnv,
    INTERNAL_TOKEN_SECRET: secret(32),
    /** The menu's one currency: new meals are priced in it. */
    MEALS_CURRENCY: z
      .string()
      .regex(/^[A-Z]{3}$/, 'must be an ISO-4217 code of 3 uppercase letters')
      .default('EUR'),
    /** Events (the worker's outbox relay). a Redis (REDIS_URL or REDIS_CLUSTER_NODES) is required by the worker process; see worker-main.ts. */
    ...messagingEnv,
    /** The worker process's /healthz, /readyz and /metrics (worker-main.ts). */
    MEALS_WORKER_PORT: port(9466),
    ...tracingEnv,
  })
  .superRefine(oneRedisMode);

export type MealsConfig = z.infer<typeof MealsConfigSchema>;

export function loadMealsConfig(env: Record<string, string | undefined> = process.env): MealsConfig {
  return loadConfig('meals', MealsConfigSchema, env);
}
