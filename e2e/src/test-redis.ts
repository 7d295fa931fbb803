import { Cluster } from 'ioredis';
import { connectRedis, type RedisConnection, type RedisTarget } from '@food/platform';
import { RedisClusterProcess, RedisServerProcess, testRedisTarget } from '@food/platform/testing';

/**
 * The Redis a test talks to directly, and the Redis of its own a fault test kills: in the suite's
 * single mode a redis-server, with `TEST_REDIS=cluster` a Redis Cluster of its own (3 masters, 3
 * replicas), where "Redis goes away" is the master of the keys that matter going away.
 */

export const clusterMode = () => testRedisTarget().mode === 'cluster';

/**
 * One connection to the suite's Redis (`testRedisTarget()`), for looking at what the services left
 * there; resolves once it is ready (a cluster's nodes known).
 */
export async function connectTestRedis(
  name: string,
  target: RedisTarget = testRedisTarget(),
): Promise<RedisConnection> {
  const redis = connectRedis(target, { name, maxRetriesPerRequest: 3, lazyConnect: true });
  await redis.connect();
  return redis;
}

/** Every node a connection reaches (each node of a cluster, masters and replicas), for per-node commands. */
export function nodesOf(redis: RedisConnection) {
  return redis instanceof Cluster ? redis.nodes('all') : [redis];
}

/**
 * The key of an event stream's first partition, as the bus names it: `<prefix>:events:{<stream>:0}`,
 * or `<prefix>:events:<stream>` where streams are not partitioned (yet). Asks Redis which of the two
 * exists, so call it once the stream has had an event.
 */
export async function streamKeyOf(redis: RedisConnection, prefix: string, stream: string): Promise<string> {
  const partitioned = `${prefix}:events:{${stream}:0}`;
  const whole = `${prefix}:events:${stream}`;
  if (await redis.exists(partitioned)) return partitioned;
  if (await redis.exists(whole)) return whole;
  throw new Error(`neither ${partitioned} nor ${whole} exists: has the ${stream} stream had an event yet?`);
}

/** A Redis of a test's own, to kill and bring back: the one thing a fault test needs of it. */
export interface OwnRedis {
  readonly target: RedisTarget;
  /** Kills (SIGKILL) what serves `key`: the server, or the cluster's master of the key's slot. */
  kill(key: string): Promise<void>;
  /**
   * Brings back what `kill` took: the server on its port and data; on a cluster, once the killed
   * master's replica has taken over, the old master (it rejoins as a replica), until the cluster is healthy.
   */
  restart(): Promise<void>;
  destroy(): Promise<void>;
}

/** A redis-server of the test's own, or in cluster mode (`TEST_REDIS=cluster`) a cluster of its own. */
export async function startOwnRedis(): Promise<OwnRedis> {
  if (!clusterMode()) {
    const server = await RedisServerProcess.start();
    return {
      target: { mode: 'single', url: server.url },
      kill: () => server.kill(),
      restart: () => server.start(),
      destroy: () => server.destroy(),
    };
  }
  const cluster = await RedisClusterProcess.start();
  let killed: number | undefined;
  return {
    target: cluster.target,
    async kill(key) {
      killed = await cluster.masterOf(key);
      await cluster.kill(killed);
    },
    async restart() {
      if (killed === undefined) return;
      const port = killed;
      killed = undefined;
      // Let the replica take over first: the old master then rejoins as its replica, as in production.
      await waitForFailover(cluster, port);
      await cluster.restart(port);
      await cluster.waitUntilHealthy();
    },
    destroy: () => cluster.destroy(),
  };
}

/** Until `port` is no longer a master: its replica has been promoted. Resolves with how long it took (ms). */
export async function waitForFailover(cluster: RedisClusterProcess, port: number, timeoutMs = 30_000): Promise<number> {
  const started = Date.now();
  for (;;) {
    const masters = await cluster.masters().catch(() => [port]);
    if (!masters.includes(port) && masters.length > 0) {
      // CLUSTER SLOTS can name the new master before it has taken every slot: wait until the cluster says ok.
      await cluster.waitUntilHealthy(timeoutMs);
      return Date.now() - started;
    }
    if (Date.now() - started > timeoutMs) throw new Error(`node ${port} was never failed over`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
