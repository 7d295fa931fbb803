import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { Supergraph } from '@apollo/federation-internals';
import { Counter, Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectRedis, createLogger, type RedisConnection } from '@food/platform';
import { RedisClusterProcess, testSecrets } from '@food/platform/testing';
import { supergraphPath } from '../compose/compose.js';
import { loadGatewayConfig } from '../config.js';
import { EntityCache, RedisEntityCacheStore, type EntitiesResponse, type EntityCacheStore } from './entity-cache.js';
import { createEdge } from './index.js';
import { RedisPersistedQueryCache } from './persisted-queries.js';
import { RateLimiter, RedisRateLimitStore } from './rate-limit.js';

// The edge on a Redis Cluster of this file's own (whatever TEST_REDIS says), where the keys of one
// request or batch land on different masters, and where a master can be killed.
let cluster: RedisClusterProcess;
const connections: RedisConnection[] = [];
const prefix = `test-edge-cluster-${randomUUID()}`;
beforeAll(async () => {
  cluster = await RedisClusterProcess.start();
}, 60_000);
afterAll(async () => {
  for (const redis of connections) redis.disconnect();
  await cluster?.destroy();
});

/** A connection as the edge opens one (fail-fast, auto-pipelined), once it is ready. */
const connect = async () => {
  const redis = connectRedis(cluster.target, {
    name: `${prefix}:test`,
    whenDown: 'fail-fast',
    commandTimeout: 1_000,
    autoPipelining: true,
  });
  connections.push(redis);
  // Fail-fast refuses commands until the cluster's slots are known (the edge waits for this too).
  await once(redis, 'ready');
  return redis;
};

/** A silent logger whose warnings and errors are kept: a cluster error that is swallowed still shows here. */
function recordingLogger() {
  const logger = createLogger('test', 'silent');
  const warn = vi.spyOn(logger, 'warn');
  const error = vi.spyOn(logger, 'error');
  return { logger, logged: () => [...warn.mock.calls, ...error.mock.calls] };
}

/** A log call's message and error, as text. */
const describeLogCall = (call: unknown[]) =>
  call
    .map((part) =>
      typeof part === 'object' && part !== null && 'err' in part
        ? String((part as { err: unknown }).err)
        : String(part),
    )
    .join(' ');

const mastersOf = async (keys: string[]) => new Set(await Promise.all(keys.map((key) => cluster.masterOf(key))));

/** An id for which `keyOf(id)` is served by `master`, or by any other master than `master` with `{ not: true }`. */
async function idOn(master: number, keyOf: (id: string) => string, options: { not?: boolean } = {}): Promise<string> {
  for (;;) {
    const id = randomUUID();
    if (((await cluster.masterOf(keyOf(id))) === master) !== Boolean(options.not)) return id;
  }
}

describe('the rate limiter on a cluster', () => {
  const budgets = {
    windowSeconds: 60,
    user: { query: 10, mutation: 0, subscription: 0 },
    ip: { query: 1, mutation: 0, subscription: 0 },
  };
  const { logger, logged } = recordingLogger();
  afterEach(() => expect(logged()).toEqual([]));

  it("does not spend a user's budget on a request its address refuses, the buckets on different masters", async () => {
    const keyPrefix = `${prefix}:${randomUUID()}`;
    const limiter = new RateLimiter(new RedisRateLimitStore(await connect(), logger), budgets, keyPrefix, logger);
    const userKey = (id: string) => `${keyPrefix}:ratelimit:query:user:{user:${id}}`;
    const ipKey = (address: string) => `${keyPrefix}:ratelimit:query:ip:${address}`;
    const [master] = await cluster.masters();
    const userId = await idOn(master!, userKey);
    const address = await idOn(master!, ipKey, { not: true });
    expect((await mastersOf([userKey(userId), ipKey(address)])).size).toBe(2);
    const ada = { kind: 'user', userId, role: 'CUSTOMER' } as const;

    expect(await limiter.take('query', ada, address)).toMatchObject({ scope: 'ip', decision: { allowed: true } });
    for (let i = 0; i < 3; i++) {
      expect(await limiter.take('query', ada, address)).toMatchObject({ scope: 'ip', decision: { allowed: false } });
    }
    // Only the first request spent from the user's budget: 10 - 1 - this one.
    const userOnly = new RateLimiter(
      new RedisRateLimitStore(await connect(), logger),
      { ...budgets, ip: { ...budgets.ip, query: 0 } },
      keyPrefix,
      logger,
    );
    expect(await userOnly.take('query', ada, address)).toMatchObject({
      scope: 'user',
      decision: { allowed: true, remaining: 8 },
    });
  });

  it('lets no more than a budget through under concurrent requests from two replicas', async () => {
    const keyPrefix = `${prefix}:${randomUUID()}`;
    const replicas = (await Promise.all([connect(), connect()])).map(
      (redis) =>
        new RateLimiter(
          new RedisRateLimitStore(redis, logger),
          { ...budgets, ip: { ...budgets.ip, query: 0 } },
          keyPrefix,
          logger,
        ),
    );
    const ada = { kind: 'user', userId: 'ada', role: 'CUSTOMER' } as const;
    const outcomes = await Promise.all(
      Array.from({ length: 30 }, (_, i) => replicas[i % 2]!.take('query', ada, `10.1.0.${i}`)),
    );
    expect(outcomes.filter((outcome) => outcome?.decision.allowed)).toHaveLength(10);
    expect(outcomes.filter((outcome) => outcome?.decision.allowed === false)).toHaveLength(20);
  });
});

const QUERY = 'query($representations:[_Any!]!){_entities(representations:$representations){...on Meal{name}}}';
const meal = (id: string) => ({ __typename: 'Meal', id });

/** A meals subgraph that records what it was asked and answers with each meal's name. */
function fakeMeals() {
  const names = new Map<string, string>();
  const asked: string[][] = [];
  const fetch = async (representations: { id: string }[]): Promise<EntitiesResponse> => {
    asked.push(representations.map((entity) => entity.id));
    return { data: { _entities: representations.map((entity) => ({ name: names.get(entity.id) ?? entity.id })) } };
  };
  return { names, asked, fetch };
}

describe('the entity cache on a cluster', () => {
  const { logger, logged } = recordingLogger();
  afterEach(() => expect(logged()).toEqual([]));

  /** A cache over the cluster whose store reports the keys it reads. */
  async function clusterCache() {
    const registry = new Registry();
    const counter = (name: string) =>
      new Counter({ name, help: name, labelNames: ['type'] as const, registers: [registry] });
    const store = new RedisEntityCacheStore(await connect());
    const keysRead: string[] = [];
    const recording: EntityCacheStore = {
      read: (entries) => (keysRead.push(...entries.map((entry) => entry.key)), store.read(entries)),
      write: (entries, ttlMs) => store.write(entries, ttlMs),
      invalidate: (keys, ttlMs) => store.invalidate(keys, ttlMs),
    };
    const cache = new EntityCache({
      store: recording,
      types: new Set(['Meal']),
      privateTypes: new Set(),
      ttlSeconds: 60,
      keyPrefix: `${prefix}:${randomUUID()}`,
      logger,
      hits: counter('hits'),
      misses: counter('misses'),
    });
    const resolve = (ids: string[], fetch: (representations: { id: string }[]) => Promise<EntitiesResponse>) =>
      cache.resolve(
        'meals',
        { query: QUERY, variables: { representations: ids.map(meal) } },
        { kind: 'public' },
        fetch,
      );
    return { cache, resolve, keysRead };
  }

  // Twelve entities: on all of one master in 3 * (1/3)^12 of runs, so in practice on several.
  const ids = Array.from({ length: 12 }, (_, i) => `meal-${i}`);
  const settle = () => new Promise((resolve) => setTimeout(resolve, 100));

  it('answers a batch over several masters from the cache, and drops what is invalidated', async () => {
    const { cache, resolve, keysRead } = await clusterCache();
    const meals = fakeMeals();
    const first = await resolve(ids, meals.fetch);
    expect(first.data?._entities).toEqual(ids.map((id) => ({ name: id })));
    expect((await mastersOf(keysRead)).size).toBeGreaterThan(1);
    await settle();

    const second = await resolve([...ids].reverse(), meals.fetch);
    expect(second.data?._entities).toEqual([...ids].reverse().map((id) => ({ name: id })));
    expect(meals.asked).toEqual([ids]);

    meals.names.set('meal-3', 'Soup').set('meal-7', 'Pizza');
    await cache.invalidate([meal('meal-3'), meal('meal-7')]);
    const third = await resolve(ids, meals.fetch);
    expect(third.data?._entities).toEqual(ids.map((id) => ({ name: meals.names.get(id) ?? id })));
    expect(meals.asked).toEqual([ids, ['meal-3', 'meal-7']]);
  });

  it('refuses the write of a batch fetched before its entities were invalidated', async () => {
    const { cache, resolve, keysRead } = await clusterCache();
    const meals = fakeMeals();
    await resolve(ids, async (representations) => {
      const stale = await meals.fetch(representations);
      for (const id of ids) meals.names.set(id, `${id} (new)`);
      await cache.invalidate(ids.map(meal));
      return stale;
    });
    expect((await mastersOf(keysRead)).size).toBeGreaterThan(1);
    await settle();
    const next = await resolve(ids, meals.fetch);
    expect(next.data?._entities).toEqual(ids.map((id) => ({ name: `${id} (new)` })));
    expect(meals.asked).toEqual([ids, ids]);
  });

  it('keeps persisted queries whose hashes land on different masters', async () => {
    const queries = new RedisPersistedQueryCache(await connect(), `${prefix}:${randomUUID()}`, logger);
    const hashes = Array.from({ length: 12 }, () => randomUUID());
    await Promise.all(hashes.map((hash) => queries.set(hash, `{ q${hash} }`, { ttl: 60 })));
    expect(await Promise.all(hashes.map((hash) => queries.get(hash)))).toEqual(hashes.map((hash) => `{ q${hash} }`));
  });
});

describe('the edge when a master of the cluster dies', () => {
  it('lets requests through while it is away, and limits and caches again once its replica took over', async () => {
    // REDIS_KEY_PREFIX takes no ':'.
    const keyPrefix = `${prefix}.${randomUUID()}`;
    const { logger, logged } = recordingLogger();
    const config = loadGatewayConfig({
      ...testSecrets,
      LOG_LEVEL: 'silent',
      REDIS_CLUSTER_NODES: cluster.seeds,
      REDIS_KEY_PREFIX: keyPrefix,
      RATE_LIMIT_USER_QUERIES: '3',
      RATE_LIMIT_IP_QUERIES: '0',
      ENTITY_CACHE_TYPES: 'Meal',
      ENTITY_CACHE_PRIVATE_TYPES: '',
    });
    const edge = await createEdge(config, Supergraph.build(readFileSync(supergraphPath, 'utf8')), logger);
    try {
      const [master] = await cluster.masters();
      const userId = await idOn(master!, (id) => `${keyPrefix}:ratelimit:query:user:{user:${id}}`);
      const mealId = await idOn(master!, (id) => `${keyPrefix}:entity:meals:Meal:${id}`);
      const caller = { kind: 'user', userId, role: 'CUSTOMER' } as const;
      const takeBudget = () => edge.guard.takeRateBudget('query', caller, '10.2.0.1');
      const meals = fakeMeals();
      const resolveMeal = () =>
        edge.entityCache!.resolve(
          'meals',
          { query: QUERY, variables: { representations: [meal(mealId)] } },
          { kind: 'public' },
          meals.fetch,
        );

      expect((await takeBudget()).outcome?.decision).toMatchObject({ allowed: true, remaining: 2 });
      await resolveMeal();
      await cluster.kill(master!);

      // Away: every request passes at once, unlimited and uncached (and what failed is logged).
      for (let i = 0; i < 5; i++) {
        const started = Date.now();
        expect((await takeBudget()).refusal).toBeUndefined();
        expect((await resolveMeal()).data?._entities).toEqual([{ name: mealId }]);
        expect(Date.now() - started).toBeLessThan(2_500);
      }
      expect(logged().length).toBeGreaterThan(0);

      // Back (its replica promoted): the budget is enforced and the entity cached again.
      await cluster.waitUntilHealthy();
      const deadline = Date.now() + 20_000;
      while ((await takeBudget()).outcome === undefined) {
        expect(Date.now()).toBeLessThan(deadline);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      for (let i = 0; i < 5; i++) await takeBudget();
      expect((await takeBudget()).refusal?.error.extensions.code).toBe('RATE_LIMITED');
      // Answered without the subgraph (from what was written before the kill, if its replica had it, or after).
      for (;;) {
        const asked = meals.asked.length;
        expect((await resolveMeal()).data?._entities).toEqual([{ name: mealId }]);
        if (meals.asked.length === asked) break;
        expect(Date.now()).toBeLessThan(deadline);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      // What went wrong was the master being away (a closed connection; a MOVED the failover left a
      // command with), never keys of several slots in one command or pipeline.
      expect(logged().map(describeLogCall)).not.toContainEqual(expect.stringMatching(/CROSSSLOT|same slot/));
    } finally {
      await edge.close();
    }
  });
});
