import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InternalTokens, INTERNAL_TOKEN_HEADER } from '@food/platform';
import { FakeUpstream, unreachableUrl } from '@food/platform/testing';
import { codes, startTestSupergraph, type GraphQLResponse } from './harness.js';
import { ServiceProcess } from './service-process.js';
import { Shop } from './shop.js';
import { record, TRACK, webSocketUrl, wsClient } from './tracking-clients.js';

let t: Awaited<ReturnType<typeof startTestSupergraph>>;
let shop: Shop;
let adaOrder: string;
const processes: ServiceProcess[] = [];

beforeAll(async () => {
  t = await startTestSupergraph();
  shop = await new Shop(t.post, t.supergraph.gatewayUrl).open();
  adaOrder = await shop.placeOrder('ada');
});

afterAll(async () => {
  await Promise.all(processes.map((process) => process.stop()));
  await t?.stop();
});

/** A gateway as its own process, joined to this run's subgraphs and Redis, with `env` on top. */
async function gatewayProcess(env: Record<string, string> = {}): Promise<ServiceProcess> {
  const gateway = await ServiceProcess.start('gateway', { ...t.processEnv, GATEWAY_PORT: '0', ...env });
  processes.push(gateway);
  return gateway;
}

const call = (gateway: ServiceProcess | string, query: string, variables = {}, headers: Record<string, string> = {}) =>
  t.post<any>(typeof gateway === 'string' ? gateway : gateway.url, { query, variables }, headers);

const as = (user: 'ada' | 'grace' | 'chef', extra: Record<string, string> = {}) => ({
  ...shop.headers(user),
  ...extra,
});

const ME = '{ me { id } }';
const ORDER_MEALS = 'query ($id: ID!) { order(id: $id) { id status items { meal { id name } } } }';

describe('rate limits, shared by two gateway processes through Redis', () => {
  let a: ServiceProcess;
  let b: ServiceProcess;

  beforeAll(async () => {
    const env = {
      REDIS_KEY_PREFIX: `${t.processEnv.REDIS_KEY_PREFIX}-limits`,
      TRUST_PROXY: 'loopback',
      RATE_LIMIT_USER_QUERIES: '4',
      RATE_LIMIT_USER_MUTATIONS: '2',
      RATE_LIMIT_USER_SUBSCRIPTIONS: '2',
      RATE_LIMIT_IP_QUERIES: '6',
      RATE_LIMIT_IP_MUTATIONS: '100',
      RATE_LIMIT_IP_SUBSCRIPTIONS: '100',
    };
    [a, b] = await Promise.all([gatewayProcess(env), gatewayProcess(env)]);
  });

  it("spends one user's query budget on either replica, then refuses with 429, RATE_LIMITED and Retry-After", async () => {
    const from = { 'x-forwarded-for': '198.51.100.1' };
    const remaining: (string | null)[] = [];
    for (const gateway of [a, b, a, b]) {
      const response = await call(gateway, ME, {}, as('ada', from));
      expect(response.status).toBe(200);
      expect(response.data.me.id).toBe(shop.userIds.ada);
      remaining.push(response.headers.get('ratelimit-remaining'));
      expect(response.headers.get('ratelimit-limit')).toBe('4');
    }
    expect(remaining).toEqual(['3', '2', '1', '0']);

    const refused = await call(a, ME, {}, as('ada', from));
    expect(refused.status).toBe(429);
    expect(refused.data).toBeUndefined();
    // One query comes back every 60 s / 4 = 15 s after the first was spent (a second or so ago on a
    // busy machine, hence 14 is fine too).
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect([14, 15]).toContain(retryAfter);
    expect(refused.errors).toEqual([
      {
        message: `Too many queries from this user: the limit is 4 per 60 s; retry in ${retryAfter} s`,
        extensions: {
          code: 'RATE_LIMITED',
          scope: 'user',
          operationType: 'query',
          limit: 4,
          windowSeconds: 60,
          retryAfterSeconds: retryAfter,
        },
      },
    ]);
    // Another user, and the same user's mutations, have budgets of their own.
    expect((await call(b, ME, {}, as('grace', { 'x-forwarded-for': '198.51.100.2' }))).status).toBe(200);
    const cancel = 'mutation ($input: CancelOrderInput!) { cancelOrder(input: $input) { id } }';
    const unknown = { input: { orderId: '00000000-0000-4000-8000-000000000000' } };
    expect(codes(await call(a, cancel, unknown, as('ada', from)))).toEqual(['NOT_FOUND']);
    expect(codes(await call(b, cancel, unknown, as('ada', from)))).toEqual(['NOT_FOUND']);
    const third = await call(a, cancel, unknown, as('ada', from));
    expect(third.status).toBe(429);
    expect(third.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', operationType: 'mutation', limit: 2 });
  });

  it('gives each client address its own budget, signed in or not, from a trusted proxy', async () => {
    const from = (address: string) => ({ 'x-forwarded-for': address });
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++)
      statuses.push((await call(i % 2 ? a : b, '{ __typename }', {}, from('203.0.113.7'))).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 429]);
    const refused = await call(a, '{ __typename }', {}, from('203.0.113.7'));
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', scope: 'ip', limit: 6 });
    expect(refused.errors?.[0]?.message).toContain('from this address');
    expect((await call(b, '{ __typename }', {}, from('203.0.113.8'))).status).toBe(200);
  });

  it('limits new subscriptions per user across replicas', async () => {
    const client = (gateway: ServiceProcess) => wsClient(gateway.url, shop.tokens.grace);
    const clients = [client(a), client(b), client(a)];
    try {
      const orderOfGrace = await shop.placeOrder('grace');
      const first = record(clients[0]!, TRACK, { id: orderOfGrace });
      const second = record(clients[1]!, TRACK, { id: orderOfGrace });
      await first.received(1);
      await second.received(1);
      const third = record(clients[2]!, TRACK, { id: orderOfGrace });
      await third.ended();
      expect(third.results).toEqual([]);
      expect((third.state.error as { extensions: unknown }[])[0]!.extensions).toMatchObject({
        code: 'RATE_LIMITED',
        scope: 'user',
        operationType: 'subscription',
        limit: 2,
      });
    } finally {
      await Promise.all(clients.map((c) => c.dispose()));
    }
  });
});

describe('the entity cache, shared by gateway processes through Redis', () => {
  let a: ServiceProcess;
  let b: ServiceProcess;
  let withoutMeals: ServiceProcess;

  beforeAll(async () => {
    // The entity cache alone: answers kept whole would hide which entities were read from it.
    const env = { REDIS_KEY_PREFIX: `${t.processEnv.REDIS_KEY_PREFIX}-entities`, RESPONSE_CACHE_MAX_MB: '0' };
    [a, b, withoutMeals] = await Promise.all([
      gatewayProcess(env),
      gatewayProcess(env),
      gatewayProcess({ ...env, MEALS_SUBGRAPH_URL: await unreachableUrl() }),
    ]);
  });

  const mealNames = async (gateway: ServiceProcess) => {
    const response = await call(gateway, ORDER_MEALS, { id: adaOrder }, as('ada'));
    return { response, names: response.data?.order?.items.map((item: any) => item.meal?.name) };
  };

  it('serves meals from the cache without the meals subgraph, and drops a meal on every replica when staff change it', async () => {
    const original = (await mealNames(a)).names[0] as string;
    expect(original).toEqual(expect.any(String));
    expect(await a.metric('gateway_entity_cache_misses_total', { type: 'Meal' })).toBe(1);

    // B finds what A cached; C cannot reach the meals subgraph at all and still has the name.
    expect((await mealNames(b)).names).toEqual([original]);
    expect(await b.metric('gateway_entity_cache_hits_total', { type: 'Meal' })).toBe(1);
    expect(await b.metric('gateway_entity_cache_misses_total', { type: 'Meal' })).toBe(0);
    const cached = await mealNames(withoutMeals);
    expect(cached.response.errors).toBeUndefined();
    expect(cached.names).toEqual([original]);

    // Staff rename the meal through A: the very next read on B has the new name.
    const renamed = `${original} (new recipe)`;
    const update = await call(
      a,
      'mutation ($id: ID!, $input: UpdateMealInput!) { updateMeal(id: $id, input: $input) { name } }',
      { id: shop.mealId, input: { name: renamed } },
      as('chef'),
    );
    expect(update.data.updateMeal.name).toBe(renamed);
    // C has no cached copy any more (and cannot ask the meals subgraph): the change reached the
    // cache every replica reads before the mutation answered.
    const dropped = await mealNames(withoutMeals);
    // (Order.items[].meal is non-null, so the missing meal nulls the order.)
    expect(dropped.response.data).toEqual({ order: null });
    expect(codes(dropped.response)).toEqual(['UPSTREAM_UNAVAILABLE']);
    // The very next read on B has the new name, and caches it for C too.
    expect((await mealNames(b)).names).toEqual([renamed]);
    expect(await b.metric('gateway_entity_cache_misses_total', { type: 'Meal' })).toBe(1);
    expect((await mealNames(withoutMeals)).names).toEqual([renamed]);
  });
});

describe("the entity cache for a caller's own data, kept true by events", () => {
  const MY_ORDERS =
    'query MyOrders { me { orders(first: 5) { edges { node { id status payment { status } customer { name } } } } } }';
  let a: ServiceProcess;
  let b: ServiceProcess;

  beforeAll(async () => {
    // The supergraph's own key prefix: these replicas read the event streams its workers publish to.
    // The entity cache alone: answers kept whole would hide which entities were read from it.
    const env = { RESPONSE_CACHE_MAX_MB: '0' };
    [a, b] = await Promise.all([gatewayProcess(env), gatewayProcess(env)]);
  });

  const myOrders = async (gateway: ServiceProcess) => {
    const response = await call(gateway, MY_ORDERS, {}, as('grace'));
    expect(response.errors).toBeUndefined();
    return response.data.me.orders.edges.map((edge: any) => edge.node) as any[];
  };
  const myOrder = async (gateway: ServiceProcess, orderId: string) =>
    (await myOrders(gateway)).find((node) => node.id === orderId);
  const cacheCount = (gateway: ServiceProcess, outcome: 'hits' | 'misses', type: string) =>
    gateway.metric(`gateway_entity_cache_${outcome}_total`, { type });

  /** Reads through `gateway` until the order is as expected; fails with what it last saw. */
  const myOrderOnceItIs = async (gateway: ServiceProcess, orderId: string, expected: object) => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const order = await myOrder(gateway, orderId);
      if (JSON.stringify(order) === JSON.stringify({ ...order, ...expected })) return order;
      if (Date.now() > deadline)
        throw new Error(`still ${JSON.stringify(order)}, expected ${JSON.stringify(expected)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  it("serves one replica's cached orders, payments and name on another, then the changes that workers make", async () => {
    const orderId = await shop.placeOrder('grace');
    // The order placed through the shared gateway dropped grace's list: the first read sees it.
    expect(await myOrder(a, orderId)).toMatchObject({ status: 'PENDING_PAYMENT', payment: null });
    const bHitsBefore = { user: await cacheCount(b, 'hits', 'User'), order: await cacheCount(b, 'hits', 'Order') };
    const listed = await myOrders(b);
    expect(listed.find((node) => node.id === orderId)).toMatchObject({ status: 'PENDING_PAYMENT', payment: null });
    // B called neither orders (User.orders), users (the customer's name) nor payments (each Order.payment).
    expect(await cacheCount(b, 'hits', 'User')).toBeGreaterThanOrEqual(bHitsBefore.user + 2);
    expect(await cacheCount(b, 'hits', 'Order')).toBeGreaterThanOrEqual(bHitsBefore.order + listed.length);
    expect(await cacheCount(b, 'misses', 'User')).toBe(0);
    expect(await cacheCount(b, 'misses', 'Order')).toBe(0);

    // The payment is reported by payments through the gateway; PAID is the orders worker's doing,
    // which only its event tells the cache about.
    expect(await shop.pay(orderId, 'tok_sandbox_success', 'grace')).toBe('SUCCEEDED');
    await myOrderOnceItIs(b, orderId, { status: 'PAID', payment: { status: 'SUCCEEDED' } });

    // Cancelled through the gateway; the refund and REFUNDED are both workers' (events only).
    expect(await shop.cancel(orderId, 'grace')).toBe('REFUND_PENDING');
    await myOrderOnceItIs(a, orderId, { status: 'REFUNDED', payment: { status: 'REFUNDED' } });
    await myOrderOnceItIs(b, orderId, { status: 'REFUNDED', payment: { status: 'REFUNDED' } });
  });

  it("keeps each caller's entries apart: staff reading a customer's order do not get the customer's copy", async () => {
    const orderId = await shop.placeOrder('grace');
    await myOrder(a, orderId);
    const staffMisses = await cacheCount(a, 'misses', 'Order');
    const staffRead = await call(
      a,
      'query ($id: ID!) { order(id: $id) { payment { status } } }',
      { id: orderId },
      as('chef'),
    );
    expect(staffRead.data.order).toEqual({ payment: null });
    expect(await cacheCount(a, 'misses', 'Order')).toBe(staffMisses + 1);
  });
});

describe('the response cache: whole answers per replica, dropped on every replica when an entity in them changes', () => {
  const MY_ORDERS =
    'query MyOrders { me { name orders(first: 5) { edges { node { id status payment { status } items { meal { name } } } } } } }';
  const ORDER = 'query Order($id: ID!) { order(id: $id) { id status payment { status } } }';
  let a: ServiceProcess;
  let b: ServiceProcess;

  beforeAll(async () => {
    // The supergraph's own key prefix: the replicas hear its workers' events and each other's changes.
    [a, b] = await Promise.all([gatewayProcess(), gatewayProcess()]);
  });

  /** One POST as a client sends it; the answer's text and headers, as they came. */
  const raw = async (gateway: ServiceProcess, user: 'ada' | 'grace' | 'chef', query = MY_ORDERS, variables = {}) => {
    const response = await fetch(gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...as(user) },
      body: JSON.stringify({ query, variables }),
    });
    return { status: response.status, headers: response.headers, text: await response.text() };
  };
  const hits = (gateway: ServiceProcess) => gateway.metric('gateway_response_cache_hits_total');
  const subgraphCalls = (gateway: ServiceProcess) => gateway.metric('gateway_subgraph_fetch_duration_seconds_count');
  /** Reads until the answer passes `check`; fails with what it last saw. */
  const answerOnceIt = async (read: () => Promise<{ text: string }>, check: (text: string) => boolean) => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const { text } = await read();
      if (check(text)) return text;
      if (Date.now() > deadline) throw new Error(`still ${text}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  /**
   * Reads until an answer comes from the cache (a caller who wrote within the replica lag bound, as
   * an earlier test's may have, is not answered from it); that answer, and the one before it.
   */
  const untilKept = async (gateway: ServiceProcess, read: () => ReturnType<typeof raw>) => {
    const deadline = Date.now() + 10_000;
    let previous = await read();
    for (;;) {
      const [hitsBefore, callsBefore] = [await hits(gateway), await subgraphCalls(gateway)];
      const answer = await read();
      if ((await hits(gateway)) > hitsBefore) return { previous, answer, hitsBefore, callsBefore };
      if (Date.now() > deadline) throw new Error('never answered from the cache');
      previous = answer;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };

  it('answers a repeat whole, the same bytes and headers, without any subgraph, to the same caller only', async () => {
    const { previous: first, answer: again, hitsBefore, callsBefore } = await untilKept(a, () => raw(a, 'ada'));
    expect(JSON.parse(first.text).errors).toBeUndefined();
    expect(again.text).toBe(first.text);
    expect(await hits(a)).toBe(hitsBefore + 1);
    expect(await subgraphCalls(a)).toBe(callsBefore);
    for (const header of ['content-type', 'ratelimit-limit', 'ratelimit-policy']) {
      expect(again.headers.get(header), header).toBe(first.headers.get(header));
    }
    expect(again.headers.get('x-request-id')).not.toBe(first.headers.get('x-request-id'));
    // Another caller's answer to the same query is its own, never ada's.
    const grace = await raw(a, 'grace');
    expect(grace.text).not.toBe(first.text);
    expect(await hits(a)).toBe(hitsBefore + 1);
  });

  it("drops answers on both replicas when a worker's event says an order in them changed", async () => {
    const orderId = await shop.placeOrder('grace');
    // Staff read the order on both replicas until it is answered from the cache (staff who wrote
    // within the replica lag bound, as chef may have in an earlier test, are not).
    const read = (gateway: ServiceProcess) => raw(gateway, 'chef', ORDER, { id: orderId });
    for (const gateway of [a, b]) {
      const { answer } = await untilKept(gateway, () => read(gateway));
      expect(answer.text).toContain('PENDING_PAYMENT');
    }
    // Grace pays; PAID is the orders worker's doing, which only its event tells the replicas of.
    expect(await shop.pay(orderId, 'tok_sandbox_success', 'grace')).toBe('SUCCEEDED');
    const paid = (text: string) => {
      const order = JSON.parse(text).data.order;
      return order.status === 'PAID' && order.payment?.status === 'SUCCEEDED';
    };
    await answerOnceIt(() => read(a), paid);
    await answerOnceIt(() => read(b), paid);
  });
  it('drops an answer on both replicas when staff change a meal in it through either, though no event names it', async () => {
    const { answer: before } = await untilKept(a, () => raw(a, 'ada'));
    expect((await untilKept(b, () => raw(b, 'ada'))).answer.text).toBe(before.text);
    const mealName = JSON.parse(before.text).data.me.orders.edges[0].node.items[0].meal.name as string;
    const renamed = `${mealName} (kept whole)`;
    const update = await call(
      a,
      'mutation ($id: ID!, $input: UpdateMealInput!) { updateMeal(id: $id, input: $input) { name } }',
      { id: shop.mealId, input: { name: renamed } },
      as('chef'),
    );
    expect(update.data.updateMeal.name).toBe(renamed);
    // A dropped it before the mutation answered; B hears of it from A over Redis.
    expect((await raw(a, 'ada')).text).toContain(renamed);
    await answerOnceIt(
      () => raw(b, 'ada'),
      (text) => text.includes(renamed),
    );
    expect(await b.metric('gateway_response_cache_invalidations_total')).toBeGreaterThan(0);
  });
});

describe('persisted queries', () => {
  const MENU = 'query Menu { meals(first: 2) { edges { node { name } } } }';
  const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
  const persisted = (hash: string) => ({ persistedQuery: { version: 1, sha256Hash: hash } });

  it('registers a query on one replica and serves it by hash alone on another', async () => {
    const env = { REDIS_KEY_PREFIX: `${t.processEnv.REDIS_KEY_PREFIX}-apq` };
    const [a, b] = await Promise.all([gatewayProcess(env), gatewayProcess(env)]);
    const query = `query Apq { meals(first: 1) { edges { node { id } } } }`;
    const byHash = { extensions: persisted(sha256(query)) };
    expect(codes(await t.post<any>(b.url, byHash))).toEqual(['PERSISTED_QUERY_NOT_FOUND']);
    const registered = await t.post<any>(a.url, { query, ...byHash });
    expect(registered.errors).toBeUndefined();
    const served = await t.post<any>(b.url, byHash);
    expect(served.errors).toBeUndefined();
    expect(served.data).toEqual(registered.data);
  });

  it('accepts only the listed operations in safelist mode, over HTTP and WebSockets', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'safelist-'));
    const manifest = join(directory, 'operations.json');
    writeFileSync(
      manifest,
      JSON.stringify({
        format: 'apollo-persisted-query-manifest',
        version: 1,
        operations: [MENU, TRACK].map((body) => ({ id: sha256(body), body })),
      }),
    );
    const gateway = await gatewayProcess({ PERSISTED_QUERIES: 'safelist', PERSISTED_QUERIES_MANIFEST: manifest });
    const byId = await t.post<any>(gateway.url, { extensions: persisted(sha256(MENU)) });
    expect(byId.errors).toBeUndefined();
    expect(byId.data.meals.edges).toHaveLength(2);
    expect((await t.post<any>(gateway.url, { query: MENU })).data.meals.edges).toHaveLength(2);
    const other = await t.post<any>(gateway.url, { query: '{ meals(first: 2) { edges { node { name } } } }' });
    expect(other.status).toBe(400);
    expect(codes(other)).toEqual(['PERSISTED_QUERY_NOT_IN_LIST']);
    // A client cannot add to the list by sending a hash with its query.
    const sneaky = '{ me { id } }';
    expect(codes(await t.post<any>(gateway.url, { query: sneaky, extensions: persisted(sha256(sneaky)) }))).toEqual([
      'PERSISTED_QUERY_NOT_IN_LIST',
    ]);
    expect(codes(await t.post<any>(gateway.url, { extensions: persisted(sha256(sneaky)) }))).toEqual([
      'PERSISTED_QUERY_NOT_FOUND',
    ]);

    const client = wsClient(gateway.url, shop.tokens.ada);
    try {
      const listed = record(client, TRACK, { id: adaOrder });
      await listed.received(1);
      const unlisted = record(client, TRACK.replace('payment { status }', ''), { id: adaOrder });
      await unlisted.ended();
      expect((unlisted.state.error as { extensions: unknown }[])[0]!.extensions).toEqual({
        code: 'PERSISTED_QUERY_NOT_IN_LIST',
      });
    } finally {
      await client.dispose();
    }
  });

  it('refuses to start on a manifest it cannot read, saying why', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'safelist-'));
    const manifest = join(directory, 'operations.json');
    writeFileSync(manifest, JSON.stringify({ operations: [{ id: 'abc', body: MENU }] }));
    await expect(
      gatewayProcess({ PERSISTED_QUERIES: 'safelist', PERSISTED_QUERIES_MANIFEST: manifest }),
    ).rejects.toThrow(/PERSISTED_QUERIES_MANIFEST .* is not a persisted query manifest/);
    await expect(gatewayProcess({ PERSISTED_QUERIES: 'safelist' })).rejects.toThrow(
      /PERSISTED_QUERIES_MANIFEST: is required when PERSISTED_QUERIES=safelist/,
    );
  });
});

/** The query followed by a comment that makes the document exactly `bytes` long. */
const padTo = (bytes: number, query: string) => `${query}\n#${'x'.repeat(bytes - Buffer.byteLength(query) - 2)}`;

describe('query bounds, checked before any subgraph is called', () => {
  let gateway: ServiceProcess;
  let meals: FakeUpstream<unknown>;

  beforeAll(async () => {
    // A stand-in meals subgraph that records every call: a refused query must never reach it.
    meals = new FakeUpstream(() => ({ data: { meals: { edges: [] } } }));
    await meals.start();
    gateway = await gatewayProcess({
      MEALS_SUBGRAPH_URL: meals.url,
      QUERY_MAX_DEPTH: '4',
      QUERY_MAX_ALIASES: '2',
      QUERY_MAX_ROOT_FIELDS: '2',
      QUERY_MAX_COST: '41',
      QUERY_MAX_DOCUMENT_BYTES: '200',
    });
  });
  afterAll(() => meals?.close());

  const cases: [string, string, string, number?][] = [
    [
      'maxDepth',
      '{ meals(first: 1) { edges { node { id } } } }',
      '{ meals(first: 1) { edges { node { category { id } } } } }',
      5,
    ],
    [
      'maxAliases',
      '{ a: meals(first: 1) { b: edges { node { id } } } }',
      '{ a: meals(first: 1) { b: edges { c: node { id } } } }',
      3,
    ],
    [
      'maxRootFields',
      '{ meals(first: 1) { edges { node { id } } } meal(id: "x") { id } }',
      '{ meals(first: 1) { edges { node { id } } } meal(id: "x") { id } other: meal(id: "y") { id } }',
      3,
    ],
    ['maxCost', '{ meals(first: 20) { edges { node { id } } } }', '{ meals(first: 21) { edges { node { id } } } }', 43],
    [
      'maxDocumentBytes',
      padTo(200, '{ meals(first: 1) { edges { node { id } } } }'),
      padTo(201, '{ meals(first: 1) { edges { node { id } } } }'),
      201,
    ],
  ];

  it.each(cases)(
    '%s: just under passes, one over is refused with the bound and the numbers',
    async (bound, under, over, actual) => {
      meals.requests.length = 0;
      const passed = await call(gateway, under);
      expect(passed.errors).toBeUndefined();
      expect(meals.requests.length).toBeGreaterThan(0);

      meals.requests.length = 0;
      const refused = await call(gateway, over);
      expect(refused.status).toBe(400);
      expect(refused.data).toBeUndefined();
      expect(refused.errors?.[0]?.extensions).toEqual({
        code: 'QUERY_LIMIT_EXCEEDED',
        bound,
        max: { maxDepth: 4, maxAliases: 2, maxRootFields: 2, maxCost: 41, maxDocumentBytes: 200 }[bound],
        actual,
      });
      expect(meals.requests).toHaveLength(0);
    },
  );

  it('bounds subscriptions the same way', async () => {
    const client = wsClient(gateway.url, shop.tokens.ada);
    try {
      const deep = record(
        client,
        'subscription ($id: ID!) { orderStatusChanged(orderId: $id) { items { meal { category { id } } } } }',
        { id: adaOrder },
      );
      await deep.ended();
      expect((deep.state.error as { extensions: unknown }[])[0]!.extensions).toEqual({
        code: 'QUERY_LIMIT_EXCEEDED',
        bound: 'maxDepth',
        max: 4,
        actual: 5,
      });
    } finally {
      await client.dispose();
    }
  });
});

describe('partial failure: a subgraph that is down or hangs costs only its part of the answer', () => {
  const ORDER_EVERYWHERE = 'query ($id: ID!) { order(id: $id) { id status customer { name } payment { status } } }';
  let hanging: ReturnType<typeof createServer>;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    // Accepts connections and never answers.
    hanging = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => hanging.close(resolve));
  });

  it('answers with the other subgraphs data and UPSTREAM_UNAVAILABLE when one is stopped', async () => {
    const gateway = await gatewayProcess({ PAYMENTS_SUBGRAPH_URL: await unreachableUrl() });
    const response = await call(gateway, ORDER_EVERYWHERE, { id: adaOrder }, as('ada'));
    expect(response.status).toBe(200);
    expect(response.data.order).toEqual({
      id: adaOrder,
      status: 'PENDING_PAYMENT',
      customer: { name: expect.any(String) },
      payment: null,
    });
    expect(response.errors).toEqual([
      {
        message: 'The payments service is unavailable',
        extensions: { code: 'UPSTREAM_UNAVAILABLE', service: 'payments', serviceName: 'payments' },
      },
    ]);
    // Still ready: a gateway without one subgraph serves the rest, so it stays in the load balancer.
    const ready = await fetch(gateway.url.replace(/\/graphql$/, '/readyz'));
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { dependencies: Record<string, string> }).dependencies.payments).not.toBe('ok');
  });

  it('gives up on a hanging subgraph after SUBGRAPH_TIMEOUT_MS and keeps serving meanwhile', async () => {
    const { port } = hanging.address() as AddressInfo;
    const gateway = await gatewayProcess({
      PAYMENTS_SUBGRAPH_URL: `http://127.0.0.1:${port}/graphql`,
      SUBGRAPH_TIMEOUT_MS: '1000',
    });
    const started = Date.now();
    const slow = call(gateway, ORDER_EVERYWHERE, { id: adaOrder }, as('ada'));
    // While that waits on payments, other requests are answered.
    const menu = await call(gateway, '{ meals(first: 1) { edges { node { id } } } }');
    expect(menu.errors).toBeUndefined();
    const response = await slow;
    // Without the timeout this request would wait for as long as the socket stays open.
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(response.data.order).toMatchObject({ id: adaOrder, status: 'PENDING_PAYMENT', payment: null });
    expect(response.errors).toEqual([
      {
        message: 'The payments service did not answer within 1000 ms',
        extensions: { code: 'UPSTREAM_TIMEOUT', service: 'payments', serviceName: 'payments' },
      },
    ]);
  });
});

describe('trust between services', () => {
  const forgedAdmin = () =>
    new InternalTokens('some-other-secret-that-is-long-enough-0123').sign({
      kind: 'user',
      userId: shop.userIds.chef,
      role: 'ADMIN',
    });

  it('acts as the signed-in user whatever identity headers a client adds at the gateway', async () => {
    const headers = as('ada', {
      [INTERNAL_TOKEN_HEADER]: await forgedAdmin(),
      'x-user-id': shop.userIds.chef,
      'x-user-role': 'ADMIN',
    });
    const me = await call(t.supergraph.gatewayUrl, ME, {}, headers);
    expect(me.data.me.id).toBe(shop.userIds.ada);
    const update = await call(
      t.supergraph.gatewayUrl,
      'mutation ($id: ID!) { updateMeal(id: $id, input: { name: "Hacked" }) { name } }',
      { id: shop.mealId },
      headers,
    );
    expect(codes(update)).toEqual(['FORBIDDEN']);
  });

  it('refuses a subgraph call that bears no gateway-signed token, whatever it claims', async () => {
    const meals = t.supergraph.subgraphUrls.meals;
    const query = { query: '{ meals(first: 1) { edges { node { id } } } }' };
    const attempts: Record<string, string>[] = [
      {},
      { 'x-user-id': shop.userIds.chef, 'x-user-role': 'STAFF' },
      { [INTERNAL_TOKEN_HEADER]: await forgedAdmin() },
      // A user's own session token is not an internal token.
      { [INTERNAL_TOKEN_HEADER]: shop.tokens.chef },
      { authorization: `Bearer ${shop.tokens.chef}` },
    ];
    for (const headers of attempts) {
      const response: GraphQLResponse = await t.post<any>(meals, query, headers);
      expect(response.status, JSON.stringify(headers)).toBe(401);
      expect(codes(response)).toEqual(['UNAUTHENTICATED']);
      expect(response.data).toBeUndefined();
    }
  });
});

describe('development and production', () => {
  const INTROSPECTION = '{ __schema { queryType { name } } }';
  let production: ServiceProcess;

  beforeAll(async () => {
    production = await gatewayProcess({ NODE_ENV: 'production', CORS_ORIGINS: 'https://shop.example' });
  });

  it('has introspection and a landing page in development only', async () => {
    const development = t.supergraph.gatewayUrl;
    expect((await call(development, INTROSPECTION)).data.__schema.queryType.name).toBe('Query');
    const page = await fetch(development, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');

    expect(codes(await call(production, INTROSPECTION))).toEqual(['GRAPHQL_VALIDATION_FAILED']);
    const none = await fetch(production.url, { headers: { accept: 'text/html' } });
    expect(none.headers.get('content-type') ?? '').not.toContain('text/html');
    // Nor do its errors suggest field names.
    const typo = await call(production, '{ mael(id: "x") { id } }');
    expect(JSON.stringify(typo.errors)).not.toContain('Did you mean');
    expect(JSON.stringify((await call(development, '{ mael(id: "x") { id } }')).errors)).toContain('Did you mean');
  });

  it('serves GraphiQL and its scripts in development only', async () => {
    const asset = (gateway: string) => fetch(gateway.replace(/\/graphql$/, '/graphiql/graphiql.min.js'));
    expect((await asset(t.supergraph.gatewayUrl)).status).toBe(200);
    expect((await asset(production.url)).status).toBe(404);
  });

  it('answers an unknown operationName with a 400, not an internal error', async () => {
    const response = await t.post(t.supergraph.gatewayUrl, { query: '{ __typename }', operationName: 'Menu' } as never);
    expect(response.status).toBe(400);
    expect(response.errors).toEqual([
      { message: 'Unknown operation named "Menu".', extensions: { code: 'OPERATION_RESOLUTION_FAILURE' } },
    ]);
  });

  it('lets only the configured origins call from a browser, over HTTP and WebSockets', async () => {
    const preflight = (origin: string) =>
      fetch(production.url, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type,authorization',
        },
      });
    const allowed = await preflight('https://shop.example');
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://shop.example');
    const exposed = await fetch(production.url, {
      method: 'POST',
      headers: { origin: 'https://shop.example', 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect(exposed.headers.get('access-control-expose-headers')).toContain('RateLimit-Remaining');
    expect((await preflight('https://evil.example')).headers.get('access-control-allow-origin')).toBeNull();

    const upgrade = (origin: string) =>
      new Promise<number>((resolve) => {
        const socket = new WebSocket(webSocketUrl(production.url), 'graphql-transport-ws', { origin });
        socket.on('open', () => {
          socket.close();
          resolve(101);
        });
        socket.on('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0));
        socket.on('error', () => undefined);
      });
    expect(await upgrade('https://shop.example')).toBe(101);
    expect(await upgrade('https://evil.example')).toBe(403);
  });

  it('refuses a simple cross-site GET (CSRF) unless it carries a header a page cannot send without preflight', async () => {
    const url = `${t.supergraph.gatewayUrl}?query=${encodeURIComponent('{ __typename }')}`;
    const simple = await fetch(url);
    expect(simple.status).toBe(400);
    expect(await simple.text()).toContain('CSRF');
    const preflighted = await fetch(url, { headers: { 'apollo-require-preflight': 'true' } });
    expect(preflighted.status).toBe(200);
  });
});
