import { randomUUID } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis, hmgetEach } from './redis.js';
import { RedisClusterProcess } from './testing/redis-cluster.js';

// A cluster of this file's own (whatever TEST_REDIS says): its replicas are what is looked at.
let cluster: RedisClusterProcess;
beforeAll(async () => {
  cluster = await RedisClusterProcess.start();
  // Until CLUSTER SLOTS names a replica for every range: only then does a client learn of replicas.
  const probe = new Redis({ port: cluster.ports[0]!, host: '127.0.0.1' });
  try {
    for (;;) {
      const ranges = (await probe.call('CLUSTER', 'SLOTS')) as unknown[][];
      if (ranges.length > 0 && ranges.every((range) => range.length >= 4)) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    probe.disconnect();
  }
}, 60_000);
afterAll(async () => {
  await cluster?.destroy();
});

/** The connections named `name` on the node at `port`. */
async function connectionsOn(port: number, name: string): Promise<string[]> {
  const node = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await node.connect();
    return String(await node.client('LIST'))
      .split('\n')
      .filter((line) => line.includes(` name=${name} `));
  } finally {
    node.disconnect();
  }
}

describe('a connection to a Redis Cluster', () => {
  it('connects to no replica, whose reads it never uses, so closing it leaves nothing open', async () => {
    const name = `test-replicas-${randomUUID()}`;
    // Seeded with every node, replicas too (as REDIS_CLUSTER_NODES may be): the client first takes
    // them all for masters, then learns their roles. ioredis then sent each replica READONLY, which
    // opened a connection nothing used; one opened as the client closed stayed open (patches/ioredis).
    const redis = connectRedis(cluster.target, { name });
    await redis.set(`{${name}}:key`, 'value');
    expect(await redis.get(`{${name}}:key`)).toBe('value');
    const masters = await cluster.masters();
    const replicas = cluster.ports.filter((port) => !masters.includes(port));
    expect(replicas).toHaveLength(3);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const onReplicas = (await Promise.all(replicas.map((port) => connectionsOn(port, name)))).flat();
    expect(onReplicas).toEqual([]);
    redis.disconnect();
  });
});

describe('hmgetEach on a Redis Cluster', () => {
  it('reads keys of every master in one call, each answer in its place', async () => {
    const name = `test-hmget-each-${randomUUID()}`;
    const redis = connectRedis(cluster.target, { name, whenDown: 'fail-fast' }) as Cluster;
    await new Promise((resolve) => redis.once('ready', resolve));
    const keys = Array.from({ length: 60 }, (_, i) => `${name}:entity:${i}`);
    await Promise.all(keys.map((key, i) => redis.hset(key, 'generation', String(i), 'value', `v${i}`)));
    const owners = new Set(await Promise.all(keys.map((key) => cluster.masterOf(key))));
    expect(owners.size, 'the keys are spread over every master').toBe(3);

    const reads = [
      ...keys.map((key) => ({ key, fields: ['generation', 'value'] })),
      { key: `${name}:none`, fields: ['x'] },
    ];
    expect(await hmgetEach(redis, reads)).toEqual([...keys.map((_, i) => [String(i), `v${i}`]), [null]]);
    redis.disconnect();
  });

  it('reads a key whose slot moved (MOVED) through the cluster client, which follows it', async () => {
    const name = `test-hmget-moved-${randomUUID()}`;
    const redis = connectRedis(cluster.target, { name, whenDown: 'fail-fast' }) as Cluster;
    await new Promise((resolve) => redis.once('ready', resolve));
    const key = `${name}:entity`;
    await redis.hset(key, 'value', 'current');
    // The client's slot map goes stale as in a resharding: it names another master for the key's slot.
    const owner = `127.0.0.1:${await cluster.masterOf(key)}`;
    const other = redis.nodes('master').find((node) => `${node.options.host}:${node.options.port}` !== owner)!;
    const slot = Number(await redis.call('CLUSTER', 'KEYSLOT', key));
    redis.slots[slot] = [`${other.options.host}:${other.options.port}`];

    expect(await hmgetEach(redis, [{ key, fields: ['value'] }])).toEqual([['current']]);
    redis.disconnect();
  });
});
