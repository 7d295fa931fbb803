import { readFileSync } from 'node:fs';
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import { createRequire } from 'node:module';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { z } from 'zod';
import type { Logger } from './logger.js';

/**
 * Where a process's Redis is, and the one place every user of Redis (events, jobs, rate budgets,
 * caches, persisted queries) gets its connections from. One node (`REDIS_URL`) or a Redis Cluster
 * (`REDIS_CLUSTER_NODES`): callers get a `RedisConnection` either way and keep the keys of one
 * multi-key command in one hash slot (`{tag}`), so the same code runs on both.
 */

/** A key's hash slot (0..16383, honouring a `{tag}`): ioredis's own function, which ships no types. */
const calculateSlot = createRequire(import.meta.url)('cluster-key-slot') as (key: string) => number;

/** One node, or a cluster reached through its seed nodes (it discovers the rest itself). */
export type RedisTarget =
  | { mode: 'single'; url: string; tls?: TlsOptions }
  | {
      mode: 'cluster';
      nodes: { host: string; port: number }[];
      username?: string;
      password?: string;
      tls?: TlsOptions;
    };

/** A connection to one node or to a cluster: the same commands, routed by key on a cluster. */
export type RedisConnection = Redis | Cluster;

const hostPort = /^(?<host>\[[0-9a-fA-F:]+\]|[^\s:,[\]]+)(?::(?<port>\d{1,5}))?$/;

/** The environment of every process that talks to Redis. */
export const redisEnv = {
  /** One Redis node: `redis://[user:password@]host:port[/db]` (`rediss://` for TLS). */
  REDIS_URL: z.url({ protocol: /^rediss?$/, error: 'must be a redis:// URL' }).optional(),
  /** A Redis Cluster: comma-separated `host:port` seed nodes (port 6379 when left out). */
  REDIS_CLUSTER_NODES: z
    .string()
    .optional()
    .transform((value, context) => {
      if (value === undefined || value.trim() === '') return undefined;
      const nodes: { host: string; port: number }[] = [];
      for (const item of value.split(',').map((part) => part.trim())) {
        const match = hostPort.exec(item);
        const port = Number(match?.groups?.port ?? 6379);
        if (!match || port < 1 || port > 65_535) {
          context.addIssue({ code: 'custom', message: `"${item}" is not a host:port seed node` });
          return z.NEVER;
        }
        nodes.push({ host: match.groups!.host!.replace(/^\[|\]$/g, ''), port });
      }
      return nodes;
    }),
  /** Credentials for the cluster's nodes (one node takes them from its URL, or from these). */
  REDIS_USERNAME: z.string().min(1).optional(),
  REDIS_PASSWORD: z.string().min(1).optional(),
  /** TLS to every cluster node (one node: a `rediss://` URL). */
  REDIS_TLS: z
    .enum(['true', 'false', '1', '0'], { error: 'must be true or false' })
    .default('false')
    .transform((value) => value === 'true' || value === '1'),
  /** A PEM file of the certificate authorities to trust for Redis TLS (default: the system's). */
  REDIS_TLS_CA_FILE: z.string().min(1).optional(),
};

type RedisEnv = {
  REDIS_URL?: string | undefined;
  REDIS_CLUSTER_NODES?: { host: string; port: number }[] | undefined;
  REDIS_USERNAME?: string | undefined;
  REDIS_PASSWORD?: string | undefined;
  REDIS_TLS?: boolean;
  REDIS_TLS_CA_FILE?: string | undefined;
};

/**
 * A check for a service's whole config schema (`.superRefine(oneRedisMode)`): one node or a
 * cluster, never both, and cluster-only settings only with a cluster.
 */
export function oneRedisMode(config: RedisEnv, context: z.RefinementCtx): void {
  if (config.REDIS_URL && config.REDIS_CLUSTER_NODES) {
    context.addIssue({
      code: 'custom',
      path: ['REDIS_CLUSTER_NODES'],
      message: 'set either REDIS_URL (one Redis node) or REDIS_CLUSTER_NODES (a Redis Cluster), not both',
    });
  }
  if (config.REDIS_TLS && config.REDIS_URL) {
    context.addIssue({
      code: 'custom',
      path: ['REDIS_TLS'],
      message: 'is for a cluster; for one node use a rediss:// REDIS_URL',
    });
  }
}

/** The Redis a config names, or undefined when it names none (development's in-process stand-ins). */
export function redisTargetOf(config: RedisEnv): RedisTarget | undefined {
  const ca = config.REDIS_TLS_CA_FILE ? readFileSync(config.REDIS_TLS_CA_FILE, 'utf8') : undefined;
  if (config.REDIS_CLUSTER_NODES) {
    return {
      mode: 'cluster',
      nodes: config.REDIS_CLUSTER_NODES,
      username: config.REDIS_USERNAME,
      password: config.REDIS_PASSWORD,
      tls: config.REDIS_TLS || ca ? { ...(ca && { ca }) } : undefined,
    };
  }
  if (!config.REDIS_URL) return undefined;
  let url = config.REDIS_URL;
  if (config.REDIS_PASSWORD || config.REDIS_USERNAME) {
    const parsed = new URL(url);
    if (!parsed.password && config.REDIS_PASSWORD) parsed.password = encodeURIComponent(config.REDIS_PASSWORD);
    if (!parsed.username && config.REDIS_USERNAME) parsed.username = encodeURIComponent(config.REDIS_USERNAME);
    url = parsed.toString();
  }
  return { mode: 'single', url, tls: ca ? { ca } : undefined };
}

/** Where a target is, for a log line: no credentials. */
export function describeRedisTarget(target: RedisTarget): string {
  if (target.mode === 'cluster') {
    return `Redis Cluster (seeds ${target.nodes.map((node) => `${node.host}:${node.port}`).join(', ')})`;
  }
  const url = new URL(target.url);
  if (url.password) url.password = '***';
  return `Redis (${url.toString()})`;
}

export interface RedisConnectionOptions {
  /** The connection's name on the server (`CLIENT LIST`), e.g. `food:consumer:orders`. */
  name: string;
  /**
   * How commands behave while Redis is away: `wait` queues and retries them until it is back (blocking
   * reads, workers); `fail-fast` refuses at once (no offline queue), so a request is not held up by
   * Redis being away. Default `wait`.
   */
  whenDown?: 'wait' | 'fail-fast';
  /** Per-command time limit (ms). */
  commandTimeout?: number;
  /** Attempts of one command across reconnects (`wait` only; default unlimited). */
  maxRetriesPerRequest?: number | null;
  /** Whether commands issued in one tick are sent in one batch (per node on a cluster). */
  autoPipelining?: boolean;
  lazyConnect?: boolean;
  /** Logs a lost connection once per outage (not once per retry) and its return. */
  logger?: Logger;
}

/** A restarted or failed-over Redis is reconnected to with capped backoff. */
const reconnectDelay = (times: number) => Math.min(100 * 2 ** Math.min(times, 10), 2_000);

/** Opens a connection to the target: a `Redis` for one node, a `Cluster` for a cluster. */
export function connectRedis(target: RedisTarget, options: RedisConnectionOptions): RedisConnection {
  const failFast = options.whenDown === 'fail-fast';
  const perNode: RedisOptions = {
    connectionName: options.name.replace(/[^\w:.-]/g, '_'),
    maxRetriesPerRequest: failFast ? 1 : (options.maxRetriesPerRequest ?? null),
    enableOfflineQueue: !failFast,
    retryStrategy: reconnectDelay,
    ...(options.commandTimeout !== undefined && { commandTimeout: options.commandTimeout }),
    ...(options.lazyConnect && { lazyConnect: true }),
  };
  let connection: RedisConnection;
  if (target.mode === 'single') {
    connection = new Redis(target.url, {
      ...perNode,
      ...(target.tls && { tls: { ...target.tls } }),
      ...(options.autoPipelining && { enableAutoPipelining: true }),
    });
  } else {
    const clusterOptions: ClusterOptions = {
      redisOptions: {
        ...perNode,
        ...(target.username && { username: target.username }),
        ...(target.password && { password: target.password }),
        ...(target.tls && { tls: { ...target.tls } }),
      },
      enableOfflineQueue: !failFast,
      enableAutoPipelining: options.autoPipelining ?? false,
      clusterRetryStrategy: reconnectDelay,
      // A failover takes a few seconds (node timeout + election): keep retrying redirected commands
      // meanwhile. Failing fast, a few retries only (each after a refresh of the slot map, so a command
      // for a master just replaced reaches its successor): 32 would hold a command some 6 s.
      retryDelayOnFailover: 200,
      retryDelayOnClusterDown: 200,
      retryDelayOnTryAgain: 100,
      // While a failover settles, nodes can bounce a command between them (MOVED back and forth): pause
      // between redirections, so the allowance below covers the settling rather than a few milliseconds.
      retryDelayOnMoved: 100,
      maxRedirections: failFast ? 3 : 32,
      // Managed clusters announce node addresses their TLS certificates are issued for: connect to them as named.
      ...(target.tls && { dnsLookup: (address, callback) => callback(null, address) }),
      ...(options.lazyConnect && { lazyConnect: true }),
    };
    connection = new Cluster(target.nodes, clusterOptions);
  }
  const { logger } = options;
  if (logger) {
    let lost = false;
    const onLost = (error?: unknown) => {
      if (!lost) logger.warn({ err: error, connection: options.name }, 'Redis connection lost; reconnecting');
      lost = true;
    };
    connection.on('error', onLost);
    connection.on('reconnecting', () => onLost());
    connection.on('ready', () => {
      if (lost) logger.info({ connection: options.name }, 'Redis connection back');
      lost = false;
    });
  } else {
    // Without a listener an 'error' event would throw; ioredis reconnects by itself.
    connection.on('error', () => undefined);
  }
  return connection;
}

/** Keys with the same `{tag}` share a hash slot (one cluster node), so one script or transaction may use them together. */
export const hashTag = (tag: string) => `{${tag.replace(/[{}]/g, '_')}}`;

/**
 * HMGET of many keys at once, as one pipeline per node. On a cluster each master gets its keys over
 * its own connection in one write: ioredis's Cluster pipelines (auto-pipelining included) send
 * command by command and work out each key's slot three times, which cost the gateway some 0.4 ms of
 * CPU per request of the federated benchmark (an entity fetch reads dozens of keys). A key its node
 * does not answer for (the slot moved: MOVED, ASK) or whose node cannot be reached is read again
 * through the Cluster client, which follows redirections and refreshes its slot map.
 */
export async function hmgetEach(
  redis: RedisConnection,
  reads: readonly { key: string; fields: readonly string[] }[],
): Promise<(string | null)[][]> {
  if (reads.length === 0) return [];
  if (!(redis instanceof Cluster)) {
    const pipeline = redis.pipeline();
    for (const { key, fields } of reads) pipeline.hmget(key, ...fields);
    return repliesOf(await pipeline.exec());
  }
  const masters = new Map(redis.nodes('master').map((node) => [`${node.options.host}:${node.options.port}`, node]));
  const byNode = new Map<Redis, number[]>();
  const strays: number[] = [];
  reads.forEach(({ key }, index) => {
    const node = masters.get(redis.slots[calculateSlot(key)]?.[0] ?? '');
    if (!node) return void strays.push(index);
    const indexes = byNode.get(node);
    if (indexes) indexes.push(index);
    else byNode.set(node, [index]);
  });
  const values: (string | null)[][] = new Array<(string | null)[]>(reads.length);
  await Promise.all(
    [...byNode].map(async ([node, indexes]) => {
      const pipeline = node.pipeline();
      for (const index of indexes) pipeline.hmget(reads[index]!.key, ...reads[index]!.fields);
      const results = await pipeline.exec().catch(() => null);
      indexes.forEach((index, k) => {
        const [error, value] = results?.[k] ?? [new Error('not sent')];
        if (error) strays.push(index);
        else values[index] = value as (string | null)[];
      });
    }),
  );
  await Promise.all(
    strays.map(async (index) => {
      values[index] = await redis.hmget(reads[index]!.key, ...reads[index]!.fields);
    }),
  );
  return values;
}

function repliesOf(results: [Error | null, unknown][] | null): (string | null)[][] {
  if (!results) throw new Error('the Redis pipeline was discarded');
  return results.map(([error, value]) => {
    if (error) throw error;
    return value as (string | null)[];
  });
}
