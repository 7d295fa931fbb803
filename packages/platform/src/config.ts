import { z } from 'zod';
import { redisEnv } from './redis.js';

/**
 * Parses a service's environment through one zod schema. On any problem it prints one line per
 * offending variable and exits: a service must never start on a configuration it misread.
 */
export function loadConfig<S extends z.ZodType>(
  serviceName: string,
  schema: S,
  env: Record<string, string | undefined> = process.env,
): z.infer<S> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  const lines = result.error.issues.map(
    (issue) => `${serviceName}: invalid configuration: ${issue.path.join('.') || '(root)'}: ${issue.message}`,
  );
  throw new ConfigError(lines.join('\n'));
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Common fields. Each service composes these into its own schema. */
export const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);
export const postgresUrl = z
  .string({ error: 'is required (a postgres:// connection string)' })
  .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// connection string');
export const secret = (minLength = 32) =>
  z.string({ error: `is required (a secret of at least ${minLength} characters)` }).min(minLength, {
    error: `must be at least ${minLength} characters`,
  });
export const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info');
export const nodeEnv = z.enum(['development', 'test', 'production']).default('development');
/** A yes/no switch: `true`/`false` (or `1`/`0`). */
export const flag = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0'], { error: 'must be true or false' })
    .default(fallback ? 'true' : 'false')
    .transform((value) => value === 'true' || value === '1');
/** A comma-separated list; blanks are dropped, so an empty string is an empty list. */
export const commaList = (fallback = '') =>
  z
    .string()
    .default(fallback)
    .transform((value) =>
      value
        .split(',')
        .map((item) => item.trim())
        .filter(Boolean),
    );
/** A whole number in a range, from a string. */
export const integer = (fallback: number, min: number, max: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

/** A comma-separated list of postgres:// URLs (a service's read replicas); empty means none. */
export const postgresUrlList = commaList().pipe(z.array(postgresUrl));

/**
 * The replica lag bound, shared by every service and the gateway: a service skips a replica whose
 * data is older than this, and the gateway sends a caller's reads to the primaries for this long
 * after its mutation, so that a replica a caller may read from afterwards already has its write.
 */
export const replicaLagEnv = {
  DATABASE_REPLICA_MAX_LAG_SECONDS: z.coerce.number().positive().max(300).default(2),
};

/**
 * Where events and jobs go, for every process that publishes, consumes or tails them. Processes that
 * work together must share these values: the prefix lets several deployments (or test runs) share a Redis.
 */
export const messagingEnv = {
  /** One Redis node (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER_NODES); see redis.ts. */
  ...redisEnv,
  REDIS_KEY_PREFIX: z
    .string()
    .regex(/^[\w.-]+$/, 'letters, digits, "_", "." and "-" only')
    .default('food'),
  /** A crashed process's unacknowledged events and running jobs go to another after this long. */
  REDIS_REDELIVER_AFTER_MS: z.coerce.number().int().min(1_000).max(600_000).default(30_000),
  /**
   * Partitions per event stream, each its own key and cluster hash slot, an aggregate's events all in
   * one. 8 spreads every stream over the masters of a usual cluster (3 to 8) with room to grow; each
   * partition costs every consumer and tail one connection, hence at most 64. Every process must use
   * the same count; change it only with the relays stopped and the consumers drained (the README says how).
   */
  REDIS_STREAM_PARTITIONS: integer(8, 1, 64),
  /**
   * Replicas that must confirm each event the outbox relay publishes (WAIT) before its row counts as
   * published: a failover then cannot lose it. Default 1 on a cluster (a master's replica is what a
   * failover promotes), 0 on one node (no replica to wait for).
   */
  REDIS_PUBLISH_REPLICAS: z.coerce.number().int().min(0).max(5).optional(),
};

/** Runs `main`, and turns a ConfigError into one clear message and exit code 1 instead of a stack trace. */
export function runMain(main: () => Promise<unknown>): void {
  main().catch((error: unknown) => {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
    } else {
      process.stderr.write(`fatal: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    }
    process.exit(1);
  });
}
