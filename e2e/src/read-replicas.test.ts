import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encryptionKeys, PersonalDataCipher } from '@food/platform';
import { PostgresReplicaPair } from '@food/platform/testing';
import { codes, startTestSupergraph, type GraphQLResponse } from './harness.js';
import { Shop } from './shop.js';

/**
 * The orders database on a primary and a streaming standby of the test's own, behind the real
 * gateway and orders subgraph: which reads the replica serves, read-your-writes while it stops
 * replaying, a replica killed under load, and a primary restarted.
 */
const LAG_BOUND_SECONDS = 2;
const ORDER_ADDRESS = `query ($id: ID!) { order(id: $id) { id deliveryAddress } }`;
const PLACE = `mutation ($input: PlaceOrderInput!) { placeOrder(input: $input) { id } }`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let pair: PostgresReplicaPair;
let t: Awaited<ReturnType<typeof startTestSupergraph>>;
let shop: Shop;

/** Waits out the read-your-writes window of the users' last mutation (the log-in, a placing). */
const pastWindow = () => sleep(LAG_BOUND_SECONDS * 1_000 + 300);

async function orderAs(user: 'ada' | 'chef', id: string): Promise<GraphQLResponse> {
  return t.gateway(ORDER_ADDRESS, { id }, shop.headers(user));
}

async function place(user: 'ada' | 'grace' = 'ada'): Promise<GraphQLResponse> {
  return t.gateway(
    PLACE,
    {
      input: {
        deliveryAddress: '1 Replica Road',
        items: [{ mealId: shop.mealId, quantity: 1 }],
        idempotencyKey: `order-${randomUUID()}`,
      },
    },
    shop.headers(user),
  );
}

async function replicaReads(): Promise<number> {
  const metrics = await (await fetch(t.supergraph.subgraphUrls.orders.replace(/\/graphql$/, '/metrics'))).text();
  return metrics
    .split('\n')
    .filter((line) => line.startsWith('db_replica_reads_total{database="orders"'))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

beforeAll(async () => {
  pair = await PostgresReplicaPair.start();
  await pair.sql(pair.primaryUrl(), 'CREATE DATABASE orders');
  t = await startTestSupergraph({
    workers: false,
    databaseUrls: { orders: pair.primaryUrl('orders') },
    env: {
      ORDERS_DATABASE_REPLICA_URLS: pair.replicaUrl('orders'),
      DATABASE_REPLICA_MAX_LAG_SECONDS: String(LAG_BOUND_SECONDS),
      // These tests change rows straight in the database, which no event announces: a kept answer
      // would stand until its TTL and hide which server a read went to.
      RESPONSE_CACHE_MAX_MB: '0',
    },
  });
  shop = await new Shop(t.post, t.supergraph.gatewayUrl).open();
  await pair.waitForReplay();
}, 180_000);

afterAll(async () => {
  await t?.stop();
  await pair?.stop();
}, 60_000);

describe('orders on a primary and a streaming replica', () => {
  it('serves a caller with no recent write from the replica: a change made only on the primary is not seen yet', async () => {
    const id = (await place()).data.placeOrder.id as string;
    await pair.waitForReplay();
    await pastWindow();
    await pair.pauseReplay();
    try {
      // Sealed as the orders service seals it (the address is encrypted at rest).
      const cipher = new PersonalDataCipher(
        encryptionKeys.parse(t.processEnv.ORDERS_ENCRYPTION_KEYS),
        t.processEnv.ORDERS_ENCRYPTION_ACTIVE_KEY_ID!,
      );
      await pair.sql(pair.primaryUrl('orders'), `UPDATE orders SET delivery_address_encrypted = $2 WHERE id = $1`, [
        id,
        cipher.encrypt('primary only'),
      ]);
      const before = await replicaReads();
      const read = await orderAs('ada', id);
      expect(read.errors).toBeUndefined();
      // The replica's copy: the primary's change is not replayed.
      expect(read.data.order.deliveryAddress).toBe('1 Replica Road');
      expect(await replicaReads()).toBeGreaterThan(before);
      // Paused, the replica falls behind the bound: reads go to the primary and see the change.
      await sleep(LAG_BOUND_SECONDS * 1_000 + 500);
      expect((await orderAs('ada', id)).data.order.deliveryAddress).toBe('primary only');
    } finally {
      await pair.resumeReplay();
    }
    await pair.waitForReplay();
    const metrics = await (await fetch(t.supergraph.subgraphUrls.orders.replace(/\/graphql$/, '/metrics'))).text();
    expect(metrics).toMatch(/db_replica_lag_seconds\{database="orders",replica="127\.0\.0\.1:\d+\/orders"\} [\d.e-]+/);
    expect(metrics).toMatch(/db_replica_up\{database="orders",replica="127\.0\.0\.1:\d+\/orders"\} 1/);
  });

  it('lets a caller read its own order at once while the replica replays nothing; others may see it late', async () => {
    await pastWindow();
    await pair.pauseReplay();
    try {
      const placed = await place();
      expect(placed.errors).toBeUndefined();
      const id = placed.data.placeOrder.id as string;
      // At once, through the gateway: the placing caller reads from the primary for the window.
      const own = await orderAs('ada', id);
      expect(own.errors).toBeUndefined();
      expect(own.data.order.id).toBe(id);
      // Staff made no write: the paused replica may still answer for them, without the order.
      const other = await orderAs('chef', id);
      expect(other.data?.order?.id ?? codes(other)).toSatisfy(
        (seen: unknown) => seen === id || seen === null || JSON.stringify(seen) === '["NOT_FOUND"]',
      );
      // Past the bound the paused replica is skipped: everyone reads the order from the primary.
      await pastWindow();
      expect((await orderAs('chef', id)).data.order.id).toBe(id);
      expect((await orderAs('ada', id)).data.order.id).toBe(id);
    } finally {
      await pair.resumeReplay();
    }
    await pair.waitForReplay();
  });

  it('keeps answering reads, without an error, when the replica is killed under load', async () => {
    const id = (await place()).data.placeOrder.id as string;
    await pair.waitForReplay();
    await pastWindow();
    const reads: Promise<GraphQLResponse>[] = [];
    const load = (async () => {
      for (let i = 0; i < 60; i++) {
        reads.push(orderAs('ada', id));
        await sleep(25);
      }
    })();
    await sleep(400);
    await pair.killReplica();
    await load;
    const answers = await Promise.all(reads);
    expect(answers.flatMap((answer) => answer.errors ?? [])).toEqual([]);
    expect(answers.every((answer) => answer.data.order.id === id)).toBe(true);
    await pair.startReplica();
    await pair.waitForReplay();
  });

  it('refuses writes with a coded error while the primary is down, writes nothing half, and takes them again after', async () => {
    const count = async () =>
      (await pair.sql<{ n: number }>(pair.primaryUrl('orders'), 'SELECT count(*)::int AS n FROM orders'))[0]!.n;
    const lines = async () =>
      (await pair.sql<{ n: number }>(pair.primaryUrl('orders'), 'SELECT count(*)::int AS n FROM order_items'))[0]!.n;
    const [orders, items] = [await count(), await lines()];
    await pair.stopPrimary();
    let refused: GraphQLResponse;
    try {
      refused = await place();
    } finally {
      await pair.startPrimary();
    }
    expect(refused.data?.placeOrder ?? null).toBeNull();
    expect(codes(refused)).toEqual(['UPSTREAM_UNAVAILABLE']);
    expect(JSON.stringify(refused.errors)).not.toMatch(/stack|at .*\.ts|127\.0\.0\.1/);
    expect([await count(), await lines()]).toEqual([orders, items]);
    // Back: the pool reconnects and the next placing succeeds.
    let placed: GraphQLResponse | undefined;
    for (let attempt = 0; attempt < 20; attempt++) {
      placed = await place();
      if (!placed.errors) break;
      await sleep(250);
    }
    expect(placed?.errors).toBeUndefined();
    expect(await count()).toBe(orders + 1);
  });
});
