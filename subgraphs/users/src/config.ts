import { z } from 'zod';
import {
  activeKeyIn,
  blindIndexKey,
  encryptionActiveKeyId,
  encryptionKeys,
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
  signingKeysEnv,
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
    /**
     * The private keys access tokens are signed with (ES256): a JSON array of P-256 JWKs, each with a
     * kid. The public halves are served at /.well-known/jwks.json; keep an old key here until the tokens
     * it signed have expired (ACCESS_TOKEN_TTL_SECONDS after it stopped being active).
     */
    USERS_SIGNING_KEYS: signingKeysEnv,
    /** The kid new tokens are signed with; must be one of USERS_SIGNING_KEYS. */
    USERS_SIGNING_ACTIVE_KEY_ID: z.string({ error: 'is required: the kid of the key to sign with' }).min(1),
    JWT_ISSUER: z.string().min(1).default('food-users'),
    JWT_AUDIENCE: z.string().min(1).default('food-supergraph'),
    /** How long an access token lives: also the longest a revoked session's token can still be presented. */
    ACCESS_TOKEN_TTL_SECONDS: z.coerce.number().int().min(60).max(86_400).default(900),
    /** How long a login lasts, refreshes included (default 30 days); then the user logs in again. */
    REFRESH_TOKEN_TTL_SECONDS: z.coerce
      .number()
      .int()
      .min(300)
      .max(86_400 * 365)
      .default(86_400 * 30),
    /** Comma-separated `keyId:base64key` pairs, each key 32 bytes. Old keys stay to read old rows. */
    USERS_ENCRYPTION_KEYS: encryptionKeys,
    /** The key id new values are encrypted with; must be one of USERS_ENCRYPTION_KEYS. The worker re-encrypts older rows. */
    USERS_ENCRYPTION_ACTIVE_KEY_ID: encryptionActiveKeyId,
    /** Base64 of at least 32 bytes: the HMAC key of the email's blind index (the login look-up). Never rotates. */
    USERS_BLIND_INDEX_KEY: blindIndexKey,
    /** Failed logins per account (email) that pass before a wait; each further one doubles it. */
    LOGIN_THROTTLE_ACCOUNT_FREE_FAILURES: z.coerce.number().int().min(1).max(1_000).default(5),
    /** Failed logins per client address (any accounts) before a wait: higher, many users can share one. */
    LOGIN_THROTTLE_ADDRESS_FREE_FAILURES: z.coerce.number().int().min(1).max(100_000).default(20),
    /** The first wait after the free failures, doubling each time, up to the maximum. */
    LOGIN_THROTTLE_BASE_DELAY_MS: z.coerce.number().int().min(100).max(60_000).default(1_000),
    LOGIN_THROTTLE_MAX_DELAY_SECONDS: z.coerce.number().int().min(1).max(86_400).default(900),
    /** How long failures are remembered after the last one. */
    LOGIN_THROTTLE_WINDOW_SECONDS: z.coerce.number().int().min(1).max(86_400).default(900),
    /**
     * Events (session.revoked, through the outbox relay the users process runs), the login throttle's
     * counters and the worker's jobs: a Redis (REDIS_URL or REDIS_CLUSTER_NODES) is required by the
     * users process (main.ts) and its worker (worker-main.ts).
     */
    ...messagingEnv,
    /** The worker process's /healthz, /readyz and /metrics (worker-main.ts). */
    USERS_WORKER_PORT: port(9467),
    ...tracingEnv,
  })
  .superRefine(oneRedisMode)
  .superRefine(activeKeyIn('USERS_ENCRYPTION_KEYS', 'USERS_ENCRYPTION_ACTIVE_KEY_ID'))
  .refine((config) => config.USERS_SIGNING_KEYS.has(config.USERS_SIGNING_ACTIVE_KEY_ID), {
    message: 'must name a kid in USERS_SIGNING_KEYS',
    path: ['USERS_SIGNING_ACTIVE_KEY_ID'],
  });

export type UsersConfig = z.infer<typeof UsersConfigSchema>;

export function loadUsersConfig(env: Record<string, string | undefined> = process.env): UsersConfig {
  return loadConfig('users', UsersConfigSchema, env);
}
