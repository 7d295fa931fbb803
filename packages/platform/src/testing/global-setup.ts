import { RedisClusterProcess } from './redis-cluster.js';

/**
 * Vitest's global setup. With `TEST_REDIS=cluster` the whole suite runs against a Redis Cluster of
 * its own (3 masters, 3 replicas), started here and removed afterwards: every test that asks
 * `testRedisTarget()`, and every process a test spawns with `redisEnvOf(...)`, gets the cluster.
 */
export default async function setup(): Promise<(() => Promise<void>) | undefined> {
  const mode = process.env.TEST_REDIS ?? 'single';
  if (mode === 'single') return undefined;
  if (mode !== 'cluster') throw new Error(`TEST_REDIS must be "single" or "cluster", not "${mode}"`);
  const cluster = await RedisClusterProcess.start();
  // Workers inherit this environment: one mode at a time, never both variables.
  process.env.REDIS_CLUSTER_NODES = cluster.seeds;
  delete process.env.REDIS_URL;
  return () => cluster.destroy();
}
