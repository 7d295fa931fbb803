import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { connectRedis, createLogger, type RedisConnection } from '@food/platform';
import { deleteKeys, testRedisTarget } from '@food/platform/testing';
import {
  InMemoryRateLimitStore,
  RateLimiter,
  RedisRateLimitStore,
  rateLimitHeaders,
  type Bucket,
  type RateLimitStore,
} from './rate-limit.js';

// One Redis node, or the run's cluster with TEST_REDIS=cluster.
const target = testRedisTarget();
const prefix = `test-ratelimit-${randomUUID()}`;
const connections: RedisConnection[] = [];
afterAll(async () => {
  for (const redis of connections) redis.disconnect();
  await deleteKeys(prefix, target);
});

const redisStore = () => {
  // As the edge connects: a request's buckets go out together.
  const redis = connectRedis(target, { name: `${prefix}:test`, autoPipelining: true });
  connections.push(redis);
  return new RedisRateLimitStore(redis);
};
const key = () => `${prefix}:${randomUUID()}`;
/** A store's decision for one request on `buckets`. */
const takeFrom = async (store: RateLimitStore, buckets: Bucket[]) => (await store.take(buckets)).decision!;

// Each behaviour holds for Redis (what replicas share) and for the in-process stand-in alike.
describe.each([
  ['Redis', () => [redisStore(), redisStore()] as const],
  ['in-process', () => [new InMemoryRateLimitStore(), undefined] as const],
])('%s rate limit store', (_name, makeStores) => {
  it('allows the limit at once, refuses the next until one interval has passed', async () => {
    const [store] = makeStores();
    const bucket = { key: key(), limit: 5, windowMs: 1_000 };
    const remaining: number[] = [];
    for (let i = 0; i < 5; i++) {
      const decision = await takeFrom(store, [bucket]);
      expect(decision.allowed).toBe(true);
      remaining.push(decision.remaining);
    }
    expect(remaining).toEqual([4, 3, 2, 1, 0]);
    const refused = await takeFrom(store, [bucket]);
    expect(refused).toMatchObject({ allowed: false, limit: 5, remaining: 0 });
    // One operation comes back every window / limit = 200 ms.
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(200);
    await sleep(refused.retryAfterMs + 20);
    expect((await takeFrom(store, [bucket])).allowed).toBe(true);
    expect((await takeFrom(store, [bucket])).allowed).toBe(false);
  });

  it('spends from every budget or from none: a refusal by one leaves the others untouched', async () => {
    const [store] = makeStores();
    const user = { key: key(), limit: 10, windowMs: 60_000 };
    const address = { key: key(), limit: 1, windowMs: 60_000 };
    expect(await takeFrom(store, [user, address])).toMatchObject({ allowed: true, bucket: 1, remaining: 0 });
    expect(await takeFrom(store, [user, address])).toMatchObject({ allowed: false, bucket: 1 });
    expect(await takeFrom(store, [user, address])).toMatchObject({ allowed: false, bucket: 1 });
    // Only the first request spent from the user's budget.
    expect(await takeFrom(store, [user])).toMatchObject({ allowed: true, remaining: 8 });
  });

  it('never lets more than the limit through under concurrent requests from two replicas', async () => {
    const [first, second = first] = makeStores();
    const bucket = { key: key(), limit: 10, windowMs: 60_000 };
    const decisions = await Promise.all(
      Array.from({ length: 40 }, (_, i) => takeFrom(i % 2 === 0 ? first : second, [bucket])),
    );
    expect(decisions.filter((decision) => decision.allowed)).toHaveLength(10);
  });
});

describe("reading a flag in the rate limiter's own call (read-your-writes' mark)", () => {
  it.each([1, 2])('tells whether the flag exists, with %i bucket(s), in the caller tag', async (buckets) => {
    const store = redisStore();
    const tag = `{user:${randomUUID()}}`;
    const keys = [`${prefix}:rl:${tag}`, `${prefix}:rl-ip:${randomUUID()}`].slice(0, buckets);
    const flag = `${prefix}:wrote:${tag}`;
    const take = () =>
      store.take(
        keys.map((k) => ({ key: k, limit: 100, windowMs: 60_000 })),
        flag,
      );
    expect(await take()).toMatchObject({ decision: { allowed: true }, flagged: false });
    const redis = connectRedis(target, { name: `${prefix}:flag` });
    connections.push(redis);
    await redis.set(flag, '1', 'PX', 5_000);
    expect(await take()).toMatchObject({ decision: { allowed: true }, flagged: true });
    // Without buckets, the flag alone.
    expect(await store.take([], flag)).toEqual({ decision: undefined, flagged: true });
  });
});

describe('RateLimiter', () => {
  const budgets = {
    windowSeconds: 60,
    user: { query: 3, mutation: 1, subscription: 0 },
    ip: { query: 5, mutation: 5, subscription: 0 },
  };
  const logger = createLogger('test', 'silent');
  const ada = { kind: 'user', userId: 'ada', role: 'CUSTOMER' } as const;

  it('draws a signed-in caller on its user and address budgets, an anonymous one on its address only', async () => {
    const limiter = new RateLimiter(new InMemoryRateLimitStore(), budgets, 'p', logger);
    for (let i = 0; i < 3; i++) expect((await limiter.take('query', ada, '10.0.0.1'))?.decision.allowed).toBe(true);
    const refused = (await limiter.take('query', ada, '10.0.0.1'))!;
    expect(refused).toMatchObject({ scope: 'user', decision: { allowed: false, limit: 3 } });
    // The user's refusal spent nothing from the address: two anonymous queries remain there.
    expect((await limiter.take('query', { kind: 'anonymous' }, '10.0.0.1'))?.decision).toMatchObject({ remaining: 1 });
    expect((await limiter.take('query', { kind: 'anonymous' }, '10.0.0.1'))?.decision).toMatchObject({ remaining: 0 });
    expect(await limiter.take('query', { kind: 'anonymous' }, '10.0.0.1')).toMatchObject({ scope: 'ip' });
    expect((await limiter.take('query', { kind: 'anonymous' }, '10.0.0.2'))?.decision.allowed).toBe(true);
    // Mutations have their own budget.
    expect((await limiter.take('mutation', ada, '10.0.0.3'))?.decision.allowed).toBe(true);
    expect((await limiter.take('mutation', ada, '10.0.0.3'))?.decision.allowed).toBe(false);
    // A budget of 0 is no limit at all.
    expect(await limiter.take('subscription', ada, '10.0.0.1')).toBeUndefined();
  });

  it('lets requests through when its store fails', async () => {
    const failing: RateLimitStore = { take: () => Promise.reject(new Error('Redis is down')) };
    const limiter = new RateLimiter(failing, budgets, 'p', logger);
    expect(await limiter.take('query', ada, '10.0.0.1')).toBeUndefined();
  });

  it('describes the budget in RateLimit-* headers, with Retry-After on a refusal', async () => {
    const limiter = new RateLimiter(new InMemoryRateLimitStore(), budgets, 'p', logger);
    await limiter.take('mutation', ada, '10.0.0.9');
    const refused = (await limiter.take('mutation', ada, '10.0.0.9'))!;
    expect(Object.fromEntries(rateLimitHeaders(refused))).toEqual({
      'ratelimit-limit': '1',
      'ratelimit-remaining': '0',
      'ratelimit-reset': '60',
      'ratelimit-policy': '1;w=60',
      'retry-after': '60',
    });
  });
});
