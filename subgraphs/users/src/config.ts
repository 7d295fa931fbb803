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
  signingKeysEnv,
  tracingEnv,
} from '@food/platform';

/** Every variable the users subgraph reads. Parsed once, at start-up; nothing else reads process.env. */
export const UsersConfigSchema = z.object({
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
  USERS_ENCRYPTION_KEYS: z
    .string({ error: 'is required: comma-separated keyId:base64 pairs of 32-byte keys' })
    .transform((value, ctx) => {
      const keys = new Map<string, Buffer>();
      for (const pair of value.split(',')) {
        const [keyId, encoded] = pair.trim().split(':');
        const key = Buffer.from(encoded ?? '', 'base64');
        if (!keyId || !/^[A-Za-z0-9_-]{1,32}$/.test(keyId) || key.length !== 32) {
          ctx.addIssue({ code: 'custom', message: 'each entry must be keyId:base64 of exactly 32 bytes' });
          return z.NEVER;
        }
        keys.set(keyId, key);
      }
      return keys;
    }),
  /** The key id new values are encrypted with; must be one of USERS_ENCRYPTION_KEYS. */
  USERS_ENCRYPTION_ACTIVE_KEY_ID: z.string({ error: 'is required: the id of the key to encrypt with' }).min(1),
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
   * Events (session.revoked, through the outbox relay this process runs) and the login throttle's
   * counters: a Redis (REDIS_URL or REDIS_CLUSTER_NODES) is required by the users process (main.ts).
   */
  ...messagingEnv,
  ...tracingEnv,
});

export type UsersConfig = z.infer<typeof UsersConfigSchema>;

export function loadUsersConfig(env: Record<string, string | undefined> = process.env): UsersConfig {
  return loadConfig(
    'users',
    UsersConfigSchema.refine((config) => config.USERS_ENCRYPTION_KEYS.has(config.USERS_ENCRYPTION_ACTIVE_KEY_ID), {
      message: 'must name a key in USERS_ENCRYPTION_KEYS',
      path: ['USERS_ENCRYPTION_ACTIVE_KEY_ID'],
    })
      .refine((config) => config.USERS_SIGNING_KEYS.has(config.USERS_SIGNING_ACTIVE_KEY_ID), {
        message: 'must name a kid in USERS_SIGNING_KEYS',
        path: ['USERS_SIGNING_ACTIVE_KEY_ID'],
      })
      .superRefine(oneRedisMode),
    env,
  );
}
