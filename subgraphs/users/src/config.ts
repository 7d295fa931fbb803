import { z } from 'zod';
import {
  activeKeyIn,
  blindIndexKey,
  encryptionActiveKeyId,
  encryptionKeys,
  loadConfig,
  messagingEnv,
  oneRedisMode,
  logLevel,
  nodeEnv,
  port,
  postgresUrl,
  postgresUrlList,
  replicaLagEnv,
  secret,
  tracingEnv,
} from '@food/platform';

/** Every variable the users subgraph reads. Parsed once, at start-up; nothing else reads process.env. */
export const UsersConfigSchema = z
  .object({
    NODE_ENV: nodeEnv,
    LOG_LEVEL: logLevel,
    USERS_PORT: port(4001),
    HOST: z.string().default('127.0.0.1'),
    USERS_DATABASE_URL: postgresUrl,
    /** Streaming replicas that may serve reads a little stale (see withReadReplicas); empty: none. */
    USERS_DATABASE_REPLICA_URLS: postgresUrlList,
    ...replicaLagEnv,
    INTERNAL_TOKEN_SECRET: secret(32),
    JWT_SECRET: secret(32),
    JWT_ISSUER: z.string().min(1).default('food-users'),
    JWT_AUDIENCE: z.string().min(1).default('food-supergraph'),
    JWT_TTL_SECONDS: z.coerce
      .number()
      .int()
      .min(60)
      .max(86_400 * 30)
      .default(3_600),
    /** Comma-separated `keyId:base64key` pairs, each key 32 bytes. Old keys stay to read old rows. */
    USERS_ENCRYPTION_KEYS: encryptionKeys,
    /** The key id new values are encrypted with; must be one of USERS_ENCRYPTION_KEYS. The worker re-encrypts older rows. */
    USERS_ENCRYPTION_ACTIVE_KEY_ID: encryptionActiveKeyId,
    /** Base64 of at least 32 bytes: the HMAC key of the email's blind index (the login look-up). Never rotates. */
    USERS_BLIND_INDEX_KEY: blindIndexKey,
    /** Events and jobs (the worker). A Redis (REDIS_URL or REDIS_CLUSTER_NODES) is required by the worker process; see worker-main.ts. */
    ...messagingEnv,
    /** The worker process's /healthz, /readyz and /metrics (worker-main.ts). */
    USERS_WORKER_PORT: port(9467),
    ...tracingEnv,
  })
  .superRefine(oneRedisMode)
  .superRefine(activeKeyIn('USERS_ENCRYPTION_KEYS', 'USERS_ENCRYPTION_ACTIVE_KEY_ID'));

export type UsersConfig = z.infer<typeof UsersConfigSchema>;

export function loadUsersConfig(env: Record<string, string | undefined> = process.env): UsersConfig {
  return loadConfig('users', UsersConfigSchema, env);
}
