import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Counter, Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '@food/platform';
import { deleteKeys } from '@food/platform/testing';
import {
  EntityCache,
  InMemoryEntityCacheStore,
  RedisEntityCacheStore,
  type EntitiesResponse,
  type EntityCacheStore,
} from './entity-cache.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `test-entities-${randomUUID()}`;
const connections: Redis[] = [];
afterAll(async () => {
  for (const redis of connections) redis.disconnect();
  await deleteKeys(prefix, REDIS_URL);
});

const QUERY = 'query($representations:[_Any!]!){_entities(representations:$representations){...on Meal{name}}}';
const meal = (id: string) => ({ __typename: 'Meal', id });

/** A meals subgraph that records what it was asked and answers with the names it holds. */
function fakeMeals(names: Record<string, string>) {
  const asked: string[][] = [];
  const fetch = async (representations: { id: string }[]): Promise<EntitiesResponse> => {
    asked.push(representations.map((entity) => entity.id));
    return {
      data: { _entities: representations.map((entity) => (entity.id in names ? { name: names[entity.id] } : null)) },
    };
  };
  return { names, asked, fetch };
}

function cacheOn(store: EntityCacheStore) {
  const registry = new Registry();
  const counter = (name: string) =>
    new Counter({ name, help: name, labelNames: ['type'] as const, registers: [registry] });
  const hits = counter('hits');
  const misses = counter('misses');
  const cache = new EntityCache({
    store,
    types: new Set(['Meal']),
    ttlSeconds: 60,
    keyPrefix: `${prefix}:${randomUUID()}`,
    logger: createLogger('test', 'silent'),
    hits,
    misses,
  });
  const count = async (metric: Counter) => (await metric.get()).values.reduce((sum, value) => sum + value.value, 0);
  return { cache, hits: () => count(hits), misses: () => count(misses) };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

describe.each([
  [
    'Redis',
    () => {
      const redis = new Redis(REDIS_URL);
      connections.push(redis);
      return new RedisEntityCacheStore(redis);
    },
  ],
  ['in-process', () => new InMemoryEntityCacheStore()],
])('entity cache on %s', (_name, makeStore) => {
  it('answers a fetch whose entities are all cached without calling the subgraph', async () => {
    const { cache, hits, misses } = cacheOn(makeStore());
    const meals = fakeMeals({ a: 'Pizza', b: 'Soup' });
    const first = await cache.resolve('meals', QUERY, [meal('a'), meal('b')], meals.fetch);
    await settle();
    const second = await cache.resolve('meals', QUERY, [meal('b'), meal('a')], meals.fetch);
    expect(first.data?._entities).toEqual([{ name: 'Pizza' }, { name: 'Soup' }]);
    expect(second.data?._entities).toEqual([{ name: 'Soup' }, { name: 'Pizza' }]);
    expect(meals.asked).toEqual([['a', 'b']]);
    expect([await hits(), await misses()]).toEqual([2, 2]);
  });

  it('asks the subgraph for the missing entities only, and puts its errors where they belong', async () => {
    const { cache } = cacheOn(makeStore());
    const meals = fakeMeals({ a: 'Pizza', c: 'Salad' });
    await cache.resolve('meals', QUERY, [meal('a')], meals.fetch);
    await settle();
    const failing = async (representations: { id: string }[]): Promise<EntitiesResponse> => {
      meals.asked.push(representations.map((entity) => entity.id));
      return {
        data: { _entities: [null, { name: 'Salad' }] },
        errors: [{ path: ['_entities', 0, 'name'] }],
      };
    };
    const response = await cache.resolve('meals', QUERY, [meal('x'), meal('a'), meal('c')], failing);
    expect(meals.asked).toEqual([['a'], ['x', 'c']]);
    expect(response.data?._entities).toEqual([null, { name: 'Pizza' }, { name: 'Salad' }]);
    expect(response.errors).toEqual([{ path: ['_entities', 0, 'name'] }]);
    await settle();
    // Salad was cached; the entity that failed was not.
    await cache.resolve('meals', QUERY, [meal('c')], meals.fetch);
    expect(meals.asked).toHaveLength(2);
  });

  it('caches per selection: another query of the same meal is a miss', async () => {
    const { cache } = cacheOn(makeStore());
    const meals = fakeMeals({ a: 'Pizza' });
    await cache.resolve('meals', QUERY, [meal('a')], meals.fetch);
    await settle();
    await cache.resolve('meals', QUERY.replace('{name}', '{name id}'), [meal('a')], meals.fetch);
    expect(meals.asked).toEqual([['a'], ['a']]);
  });

  it('drops an entity when it is reported changed, for every selection', async () => {
    const { cache } = cacheOn(makeStore());
    const meals = fakeMeals({ a: 'Pizza', b: 'Soup' });
    await cache.resolve('meals', QUERY, [meal('a'), meal('b')], meals.fetch);
    await settle();
    meals.names.a = 'Pizza Margherita';
    await cache.invalidate('meals', [meal('a')]);
    const after = await cache.resolve('meals', QUERY, [meal('a'), meal('b')], meals.fetch);
    expect(after.data?._entities).toEqual([{ name: 'Pizza Margherita' }, { name: 'Soup' }]);
    expect(meals.asked).toEqual([['a', 'b'], ['a']]);
  });

  it('does not store an answer fetched before a change that was reported while it was in flight', async () => {
    const { cache } = cacheOn(makeStore());
    const meals = fakeMeals({ a: 'Pizza' });
    // The fetch reads the old name, then the meal changes and is invalidated, then the fetch returns.
    await cache.resolve('meals', QUERY, [meal('a')], async (representations) => {
      const stale = await meals.fetch(representations);
      meals.names.a = 'Pizza Margherita';
      await cache.invalidate('meals', [meal('a')]);
      return stale;
    });
    await settle();
    const next = await cache.resolve('meals', QUERY, [meal('a')], meals.fetch);
    expect(next.data?._entities).toEqual([{ name: 'Pizza Margherita' }]);
  });
});

describe('entity cache when its store fails', () => {
  it('fetches everything from the subgraph', async () => {
    const broken: EntityCacheStore = {
      read: () => Promise.reject(new Error('Redis is down')),
      write: () => Promise.reject(new Error('Redis is down')),
      invalidate: () => Promise.reject(new Error('Redis is down')),
    };
    const { cache } = cacheOn(broken);
    const meals = fakeMeals({ a: 'Pizza' });
    const response = await cache.resolve('meals', QUERY, [meal('a')], meals.fetch);
    expect(response.data?._entities).toEqual([{ name: 'Pizza' }]);
    await expect(cache.invalidate('meals', [meal('a')])).resolves.toBeUndefined();
  });

  it('only handles _entities fetches of cached types, each with an id', () => {
    const { cache } = cacheOn(new InMemoryEntityCacheStore());
    expect(cache.handles(QUERY, { representations: [meal('a')] })).toBe(true);
    expect(cache.handles(QUERY, { representations: [meal('a'), { __typename: 'Order', id: 'o' }] })).toBe(false);
    expect(cache.handles(QUERY, { representations: [] })).toBe(false);
    expect(cache.handles('{ meals { edges { node { id } } } }', {})).toBe(false);
  });
});
