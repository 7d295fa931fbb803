import { randomUUID } from 'node:crypto';
import { Supergraph } from '@apollo/federation-internals';
import { readFileSync } from 'node:fs';
import { Counter, Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import {
  changedEntitiesOf,
  connectRedis,
  createLogger,
  createMessaging,
  newEvent,
  type RedisConnection,
} from '@food/platform';
import { deleteKeys, testRedisTarget, testSecrets } from '@food/platform/testing';
import { supergraphPath } from '../compose/compose.js';
import { loadGatewayConfig } from '../config.js';
import {
  EntityCache,
  InMemoryEntityCacheStore,
  RedisEntityCacheStore,
  type CacheScope,
  type EntitiesResponse,
  type EntityCacheStore,
} from './entity-cache.js';
import { invalidateOnEvents, streamsWithChanges } from './entity-invalidation.js';
import { createEdge } from './index.js';

// One Redis node, or the run's cluster with TEST_REDIS=cluster.
const target = testRedisTarget();
const prefix = `test-entities-${randomUUID()}`;
const connections: RedisConnection[] = [];
/** A connection as the edge opens one: a fetch's entities go out together (one pipeline per node). */
const connect = () => {
  const redis = connectRedis(target, { name: `${prefix}:test`, autoPipelining: true });
  connections.push(redis);
  return redis;
};
afterAll(async () => {
  for (const redis of connections) redis.disconnect();
  await deleteKeys(prefix, target);
});

const QUERY = 'query($representations:[_Any!]!){_entities(representations:$representations){...on Meal{name}}}';
const meal = (id: string) => ({ __typename: 'Meal', id });
const user = (id: string) => ({ __typename: 'User', id });
const order = (id: string) => ({ __typename: 'Order', id });
const ALICE: CacheScope = { kind: 'caller', callerKey: 'user:alice:CUSTOMER' };
const STAFF: CacheScope = { kind: 'caller', callerKey: 'user:chef:STAFF' };

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
    privateTypes: new Set(['User', 'Order']),
    ttlSeconds: 60,
    keyPrefix: `${prefix}:${randomUUID()}`,
    logger: createLogger('test', 'silent'),
    hits,
    misses,
  });
  const count = async (metric: Counter) => (await metric.get()).values.reduce((sum, value) => sum + value.value, 0);
  return { cache, hits: () => count(hits), misses: () => count(misses) };
}

const PUBLIC: CacheScope = { kind: 'public' };

/** The meals subgraph's `_entities` fetch for these meals, through the cache. */
const resolveMeals = (
  cache: EntityCache,
  representations: { __typename: string; id: string }[],
  fetch: (representations: { id: string }[]) => Promise<EntitiesResponse>,
  query = QUERY,
) => cache.resolve('meals', { query, variables: { representations } }, PUBLIC, fetch);

const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

describe.each([
  ['Redis', () => new RedisEntityCacheStore(connect())],
  ['in-process', () => new InMemoryEntityCacheStore()],
])('entity cache on %s', (_name, makeStore) => {
  it('answers a fetch whose entities are all cached without calling the subgraph', async () => {
    const { cache, hits, misses } = cacheOn(makeStore());
    const meals = fakeMeals({ a: 'Pizza', b: 'Soup' });
    const first = await resolveMeals(cache, [meal('a'), meal('b')], meals.fetch);
    await settle();
    const second = await resolveMeals(cache, [meal('b'), meal('a')], meals.fetch);
    expect(first.data?._entities).toEqual([{ name: 'Pizza' }, { name: 'Soup' }]);
    expect(second.data?._entities).toEqual([{ name: 'Soup' }, { name: 'Pizza' }]);
    expect(meals.asked).toEqual([['a', 'b']]);
    expect([await hits(), await misses()]).toEqual([2, 2]);
  });

  it('asks the subgraph for the missing entities only, and puts its errors where they belong', async () => {
    const { cache } = cacheOn(makeStore());
    const meals = fakeMeals({ a: 'Pizza', c: 'Salad' });
    await resolveMeals(cache, [meal('a')], meals.fetch);
    await settle();
    const failing = async (representations: { id: string }[]): Promise<EntitiesResponse> => {
      meals.asked.push(representations.map((entity) => entity.id));
      return {
        data: { _entities: [null, { name: 'Salad' }] },
        errors: [{ path: ['_entities', 0, 'name'] }],
      };
    };
    const response = await resolveMeals(cache, [meal('x'), meal('a'), meal('c')], failing);
    expect(meals.asked).toEqual([['a'], ['x', 'c']]);
    expect(response.data?._entities).toEqual([null, { name: 'Pizza' }, { name: 'Salad' }]);
    expect(response.errors).toEqual([{ path: ['_entities', 0, 'name'] }]);
    await settle();
    // Salad was cached; the entity that failed was not.
    await resolveMeals(cache, [meal('c')], meals.fetch);
    expect(meals.asked).toHaveLength(2);
  });

  it('caches per selection: another query of the same meal is a miss', async () => {
    const { cache } = cacheOn(makeStore());
    const meals = fakeMeals({ a: 'Pizza' });
    await resolveMeals(cache, [meal('a')], meals.fetch);
    await settle();
    await resolveMeals(cache, [meal('a')], meals.fetch, QUERY.replace('{name}', '{name id}'));
    expect(meals.asked).toEqual([['a'], ['a']]);
  });

  it('caches per required field: an entity sent with another price is a miss, the same price a hit', async () => {
    const { cache } = cacheOn(makeStore());
    const asked: unknown[][] = [];
    const shipping = async (representations: unknown[]): Promise<EntitiesResponse> => {
      asked.push(representations);
      const prices = representations as { price: number }[];
      return { data: { _entities: prices.map(({ price }) => ({ shipping: price * 2 })) } };
    };
    const query = 'query($representations:[_Any!]!){_entities(representations:$representations){...on Meal{shipping}}}';
    const at = (price: number) =>
      cache.resolve(
        'shipping',
        { query, variables: { representations: [{ __typename: 'Meal', id: 'a', price }] } },
        PUBLIC,
        shipping,
      );
    expect((await at(10)).data?._entities).toEqual([{ shipping: 20 }]);
    await settle();
    expect((await at(50)).data?._entities).toEqual([{ shipping: 100 }]);
    await settle();
    expect((await at(10)).data?._entities).toEqual([{ shipping: 20 }]);
    expect((await at(50)).data?._entities).toEqual([{ shipping: 100 }]);
    expect(asked).toEqual([[{ __typename: 'Meal', id: 'a', price: 10 }], [{ __typename: 'Meal', id: 'a', price: 50 }]]);
  });

  it('caches per field arguments: the same selection with other arguments is a miss', async () => {
    const { cache } = cacheOn(makeStore());
    const asked: unknown[] = [];
    const query =
      'query($representations:[_Any!]!,$first:Int){_entities(representations:$representations){...on User{orders(first:$first){id}}}}';
    const resolve = (first: number) =>
      cache.resolve('orders', { query, variables: { representations: [user('u')], first } }, ALICE, async (missing) => {
        asked.push(first);
        return { data: { _entities: missing.map(() => ({ orders: [{ id: `first ${first}` }] })) } };
      });
    await resolve(10);
    await settle();
    expect((await resolve(20)).data?._entities).toEqual([{ orders: [{ id: 'first 20' }] }]);
    await settle();
    expect((await resolve(10)).data?._entities).toEqual([{ orders: [{ id: 'first 10' }] }]);
    expect(asked).toEqual([10, 20]);
  });

  it("keeps a private type's entities per caller, and drops them for every caller when changed", async () => {
    const { cache } = cacheOn(makeStore());
    const asked: string[] = [];
    const status = { o: 'PAID' };
    const query =
      'query($representations:[_Any!]!){_entities(representations:$representations){...on Order{payment{status}}}}';
    const resolve = (scope: CacheScope) =>
      cache.resolve('payments', { query, variables: { representations: [order('o')] } }, scope, async (missing) => {
        asked.push(scope.kind === 'caller' ? scope.callerKey : 'public');
        return { data: { _entities: missing.map(() => ({ payment: { status: status.o } })) } };
      });
    await resolve(ALICE);
    await settle();
    await resolve(ALICE);
    await resolve(STAFF);
    await settle();
    expect(asked).toEqual(['user:alice:CUSTOMER', 'user:chef:STAFF']);

    status.o = 'REFUNDED';
    await cache.invalidate([order('o')]);
    expect((await resolve(ALICE)).data?._entities).toEqual([{ payment: { status: 'REFUNDED' } }]);
    expect((await resolve(STAFF)).data?._entities).toEqual([{ payment: { status: 'REFUNDED' } }]);
    expect(asked).toHaveLength(4);
  });

  it('drops an entity when it is reported changed, for every selection', async () => {
    const { cache } = cacheOn(makeStore());
    const meals = fakeMeals({ a: 'Pizza', b: 'Soup' });
    await resolveMeals(cache, [meal('a'), meal('b')], meals.fetch);
    await settle();
    meals.names.a = 'Pizza Margherita';
    await cache.invalidate([meal('a')]);
    const after = await resolveMeals(cache, [meal('a'), meal('b')], meals.fetch);
    expect(after.data?._entities).toEqual([{ name: 'Pizza Margherita' }, { name: 'Soup' }]);
    expect(meals.asked).toEqual([['a', 'b'], ['a']]);
  });

  it("keeps each subgraph's answers about an entity apart, and drops them all when it changes", async () => {
    const { cache } = cacheOn(makeStore());
    const meals = fakeMeals({ a: 'Pizza' });
    const reviews = fakeMeals({ a: '4 stars' });
    // The same query text to two subgraphs: two answers, each its own subgraph's.
    const ofMeals = () =>
      cache.resolve('meals', { query: QUERY, variables: { representations: [meal('a')] } }, PUBLIC, meals.fetch);
    const ofReviews = () =>
      cache.resolve('reviews', { query: QUERY, variables: { representations: [meal('a')] } }, PUBLIC, reviews.fetch);
    expect([(await ofMeals()).data?._entities, (await ofReviews()).data?._entities]).toEqual([
      [{ name: 'Pizza' }],
      [{ name: '4 stars' }],
    ]);
    await settle();
    expect([(await ofMeals()).data?._entities, (await ofReviews()).data?._entities]).toEqual([
      [{ name: 'Pizza' }],
      [{ name: '4 stars' }],
    ]);
    expect([meals.asked, reviews.asked]).toEqual([[['a']], [['a']]]);
    // Reported changed by one subgraph: the other's answer may depend on it (@requires) and goes too.
    await cache.invalidate([meal('a')]);
    await ofMeals();
    await ofReviews();
    expect([meals.asked, reviews.asked]).toEqual([
      [['a'], ['a']],
      [['a'], ['a']],
    ]);
  });

  it('does not store an answer fetched before a change that was reported while it was in flight', async () => {
    const { cache } = cacheOn(makeStore());
    const meals = fakeMeals({ a: 'Pizza' });
    // The fetch reads the old name, then the meal changes and is invalidated, then the fetch returns.
    await resolveMeals(cache, [meal('a')], async (representations) => {
      const stale = await meals.fetch(representations);
      meals.names.a = 'Pizza Margherita';
      await cache.invalidate([meal('a')]);
      return stale;
    });
    await settle();
    const next = await resolveMeals(cache, [meal('a')], meals.fetch);
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
    const response = await resolveMeals(cache, [meal('a')], meals.fetch);
    expect(response.data?._entities).toEqual([{ name: 'Pizza' }]);
    await expect(cache.invalidate([meal('a')])).resolves.toBeUndefined();
  });

  it('only handles _entities fetches of cached types, each with an id; private ones only for a caller', () => {
    const { cache } = cacheOn(new InMemoryEntityCacheStore());
    expect(cache.scopeOf(QUERY, { representations: [meal('a')] })).toEqual(PUBLIC);
    expect(cache.scopeOf(QUERY, { representations: [meal('a')] }, 'user:alice:CUSTOMER')).toEqual(PUBLIC);
    expect(cache.scopeOf(QUERY, { representations: [meal('a'), order('o')] })).toBeUndefined();
    expect(cache.scopeOf(QUERY, { representations: [meal('a'), order('o')] }, 'user:alice:CUSTOMER')).toEqual(ALICE);
    expect(cache.scopeOf(QUERY, { representations: [{ __typename: 'Payment', id: 'p' }] }, 'x')).toBeUndefined();
    expect(cache.scopeOf(QUERY, { representations: [{ __typename: 'Meal', id: 1 }] })).toBeUndefined();
    expect(cache.scopeOf(QUERY, { representations: [] })).toBeUndefined();
    expect(cache.scopeOf('{ meals { edges { node { id } } } }', {})).toBeUndefined();
  });
});

describe('entity cache invalidation from events', () => {
  const silent = createLogger('test', 'silent');
  const ids = { order: randomUUID(), customer: randomUUID(), payment: randomUUID() };

  it('names the order and its customer for order events, the order and payment for payment events', () => {
    const changed = newEvent('order.status_changed', ids.order, {
      orderId: ids.order,
      customerId: ids.customer,
      from: 'PAID',
      to: 'ACCEPTED',
      version: 2,
      final: false,
      actor: { kind: 'user', id: 'chef' },
      reason: null,
    });
    expect(changedEntitiesOf(changed)).toEqual([
      { subgraph: 'orders', entities: [order(ids.order), user(ids.customer)] },
    ]);
    const refunded = newEvent('payment.refunded', ids.payment, {
      paymentId: ids.payment,
      orderId: ids.order,
      amount: { amount: 1200, currency: 'EUR' },
    });
    expect(changedEntitiesOf(refunded)).toEqual([
      { subgraph: 'payments', entities: [order(ids.order), { __typename: 'Payment', id: ids.payment }] },
    ]);
  });

  it('tails every stream whose events declare changes', () => {
    expect(streamsWithChanges().sort()).toEqual(['meals', 'orders', 'payments']);
  });

  it.each([
    ['in-process', () => createMessaging({ logger: silent }), () => new InMemoryEntityCacheStore()],
    [
      'Redis',
      () => createMessaging({ logger: silent, redis: target, keyPrefix: `${prefix}:${randomUUID()}` }),
      () => new RedisEntityCacheStore(connect()),
    ],
  ])('drops what an event names once it is published, for every caller (%s)', async (_name, connectBus, makeStore) => {
    const logger = silent;
    const messaging = connectBus();
    const { cache } = cacheOn(makeStore());
    const subscription = await invalidateOnEvents(messaging.bus, (entities) => cache.invalidate(entities), logger);
    try {
      let status = 'PENDING';
      const asked: string[] = [];
      const query =
        'query($representations:[_Any!]!){_entities(representations:$representations){...on Order{payment{status}}}}';
      const resolve = () =>
        cache.resolve('payments', { query, variables: { representations: [order(ids.order)] } }, ALICE, async () => {
          asked.push(status);
          return { data: { _entities: [{ payment: { status } }] } };
        });
      await resolve();
      await settle();
      status = 'SUCCEEDED';
      expect((await resolve()).data?._entities).toEqual([{ payment: { status: 'PENDING' } }]);

      await messaging.bus.publish(
        'payments',
        newEvent('payment.succeeded', ids.payment, {
          paymentId: ids.payment,
          orderId: ids.order,
          amount: { amount: 1200, currency: 'EUR' },
        }),
      );
      await settle();
      expect((await resolve()).data?._entities).toEqual([{ payment: { status: 'SUCCEEDED' } }]);
      expect(asked).toEqual(['PENDING', 'SUCCEEDED']);
    } finally {
      await subscription.close();
      await messaging.close();
    }
  });
});

describe('private entity types of the edge', () => {
  const supergraph = readFileSync(supergraphPath, 'utf8');
  const ORDER_QUERY =
    'query($representations:[_Any!]!){_entities(representations:$representations){...on Order{payment{status}}}}';

  /** Whose answer the edge's entity cache makes a caller's fetch of an order, for this supergraph. */
  async function orderScope(supergraphSdl: string, env: Record<string, string> = {}) {
    const logger = createLogger('test', 'silent');
    const messaging = createMessaging({ logger });
    const config = loadGatewayConfig({ ...testSecrets, LOG_LEVEL: 'silent', ...env });
    const edge = await createEdge(config, Supergraph.build(supergraphSdl), logger, messaging.bus);
    try {
      return edge.entityCache?.scopeOf(ORDER_QUERY, { representations: [order('o')] }, 'user:alice:CUSTOMER');
    } finally {
      await edge.close();
      await messaging.close();
    }
  }

  it('are the types the supergraph declares @cacheControl(scope: PRIVATE)', async () => {
    expect(supergraph).toContain('@cacheControl(scope: PRIVATE)');
    expect(await orderScope(supergraph)).toEqual(ALICE);
    expect(await orderScope(supergraph.replaceAll('@cacheControl(scope: PRIVATE)', ''))).toBeUndefined();
  });

  it('are replaced by ENTITY_CACHE_PRIVATE_TYPES when it is set', async () => {
    expect(await orderScope(supergraph, { ENTITY_CACHE_PRIVATE_TYPES: '' })).toBeUndefined();
    const undeclared = supergraph.replaceAll('@cacheControl(scope: PRIVATE)', '');
    expect(await orderScope(undeclared, { ENTITY_CACHE_PRIVATE_TYPES: 'Order' })).toEqual(ALICE);
  });

  it('refuses to start when one is also cached for every caller', async () => {
    await expect(orderScope(supergraph, { ENTITY_CACHE_TYPES: 'Meal,Order' })).rejects.toThrow(
      'ENTITY_CACHE_TYPES lists private entity types (Order)',
    );
  });
});
