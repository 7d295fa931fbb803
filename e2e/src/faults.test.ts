import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'graphql-ws';
import { startTestSupergraph } from './harness.js';
import { ServiceProcess } from './service-process.js';
import { Shop } from './shop.js';
import { connectTestRedis, startOwnRedis, streamKeyOf, type OwnRedis } from './test-redis.js';
import { FEED, TRACK, record, statusesOf, wsClient, WHOLE_JOURNEY } from './tracking-clients.js';

/**
 * Crashes while orders are moving: the workers (outbox relays, event consumers, jobs) run as their own
 * processes and are SIGKILLed; Redis is our own redis-server (AOF, fsync always), SIGKILLed and
 * restarted, or with `TEST_REDIS=cluster` a Redis Cluster of our own whose master of the orders stream
 * is SIGKILLed, failed over and restarted (it rejoins as a replica). Nothing may be lost, duplicated or
 * reordered, for the databases or for a subscriber.
 */
let redis: OwnRedis;
let t: Awaited<ReturnType<typeof startTestSupergraph>>;
let shop: Shop;
let ordersWorker: ServiceProcess;
let paymentsWorker: ServiceProcess;
const clients: Client[] = [];

function client(token: string) {
  const created = wsClient(t.supergraph.gatewayUrl, token);
  clients.push(created);
  return created;
}

/** How many times each order went through `to` in its history (the orders database). */
async function transitionsTo(orderIds: string[], to: string): Promise<number[]> {
  const found = await t.query(
    'orders',
    `SELECT order_id, count(*)::int AS n FROM order_status_changes WHERE order_id = ANY($1::uuid[]) AND to_status = $2
     GROUP BY order_id`,
    [orderIds, to],
  );
  return orderIds.map((id) => found.find((row) => row.order_id === id)?.n ?? 0);
}

/** Payment events each order's payments published, by type (the payments database). */
async function paymentEvents(orderIds: string[], type: string): Promise<number[]> {
  const found = await t.query(
    'payments',
    `SELECT p.order_id, count(*)::int AS n FROM outbox_events e JOIN payments p ON p.id = e.aggregate_id
     WHERE p.order_id = ANY($1::uuid[]) AND e.type = $2 GROUP BY p.order_id`,
    [orderIds, type],
  );
  return orderIds.map((id) => found.find((row) => row.order_id === id)?.n ?? 0);
}

beforeAll(async () => {
  redis = await startOwnRedis();
  t = await startTestSupergraph({ workers: false, redis: redis.target });
  shop = await new Shop(t.post, t.supergraph.gatewayUrl).open();
  // A killed worker's unacknowledged events and running jobs go to its successor after 3 s, not 30.
  const workerEnv = { ...t.processEnv, REDIS_REDELIVER_AFTER_MS: '3000' };
  ordersWorker = await ServiceProcess.start('orders-worker', workerEnv);
  paymentsWorker = await ServiceProcess.start('payments-worker', workerEnv);
}, 180_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.dispose()));
  await Promise.all([ordersWorker?.stop(), paymentsWorker?.stop()]);
  await t?.stop();
  await redis?.destroy();
});

describe('faults while orders move', () => {
  const orderIds: string[] = [];
  let trackers: ReturnType<typeof record>[] = [];

  it('loses no payment outcome and no status change when the orders worker is killed mid-stream', async () => {
    for (let i = 0; i < 6; i++) orderIds.push(await shop.placeOrder());
    trackers = orderIds.map((id) => record(client(shop.tokens.ada), TRACK, { id }));
    const kitchen = record(client(shop.tokens.chef), FEED);
    await Promise.all(trackers.map((tracker) => tracker.received(1)));

    await Promise.all(orderIds.slice(0, 3).map((id) => shop.pay(id)));
    await shop.orderOnceItIs(orderIds[0]!, 'PAID');
    await ordersWorker.kill();
    // While it is down: more payments (their events wait in Redis) and a kitchen change (its event
    // waits in the orders outbox, with no relay running).
    await Promise.all(orderIds.slice(3).map((id) => shop.pay(id)));
    await shop.changeStatus(orderIds[0]!, 'ACCEPTED');
    await ordersWorker.start();

    for (const id of orderIds.slice(1)) await shop.orderOnceItIs(id, 'PAID');
    await trackers[0]!.received(3);
    await Promise.all(trackers.slice(1).map((tracker) => tracker.received(2)));
    expect(statusesOf(trackers[0]!.results)).toEqual(['PENDING_PAYMENT/1', 'PAID/2', 'ACCEPTED/3']);
    for (const tracker of trackers.slice(1))
      expect(statusesOf(tracker.results)).toEqual(['PENDING_PAYMENT/1', 'PAID/2']);
    await kitchen.received(7);
    const kitchenSaw = kitchen.results.map(
      (result) => `${result.data.orderUpdates.id}:${result.data.orderUpdates.status}`,
    );
    for (const id of orderIds) expect(kitchenSaw.filter((seen) => seen === `${id}:PAID`)).toHaveLength(1);
    // Each order charged once and moved to PAID once, however often its event was delivered.
    expect(await paymentEvents(orderIds, 'payment.succeeded')).toEqual(orderIds.map(() => 1));
    expect(await transitionsTo(orderIds, 'PAID')).toEqual(orderIds.map(() => 1));
  });

  it('refunds each cancelled order exactly once when the payments worker is killed mid-refund', async () => {
    const cancelling = orderIds.slice(1);
    for (const id of cancelling) expect(await shop.cancel(id)).toBe('REFUND_PENDING');
    await paymentsWorker.kill();
    await paymentsWorker.start();
    for (const id of cancelling)
      expect((await shop.orderOnceItIs(id, 'REFUNDED')).payment).toEqual({ status: 'REFUNDED' });
    expect(await paymentEvents(cancelling, 'payment.refunded')).toEqual(cancelling.map(() => 1));
    expect(await transitionsTo(cancelling, 'REFUNDED')).toEqual(cancelling.map(() => 1));
    // The trackers saw the whole story, in order, and completed on the final state.
    await Promise.all(trackers.slice(1).map((tracker) => tracker.ended()));
    for (const tracker of trackers.slice(1)) {
      expect(statusesOf(tracker.results)).toEqual(['PENDING_PAYMENT/1', 'PAID/2', 'REFUND_PENDING/3', 'REFUNDED/4']);
      expect(tracker.state).toEqual({ completed: true });
    }
  });

  it('delivers every change made while Redis was down once it is back, in order', async () => {
    const [moving, paying] = [orderIds[0]!, await shop.placeOrder()];
    const payingTracker = record(client(shop.tokens.ada), TRACK, { id: paying });
    await payingTracker.received(1);

    // The server, or on a cluster the master of the stream the orders relay publishes to.
    const looking = await connectTestRedis('test-faults', redis.target);
    const ordersStream = await streamKeyOf(looking, t.processEnv.REDIS_KEY_PREFIX!, 'orders').finally(() =>
      looking.disconnect(),
    );
    await redis.kill(ordersStream);
    // Writes need only Postgres: the changes and their events wait in the outboxes.
    for (const status of ['PREPARING', 'READY', 'OUT_FOR_DELIVERY', 'DELIVERED'])
      await shop.changeStatus(moving, status);
    await shop.pay(paying);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await redis.restart();

    await trackers[0]!.ended(30_000);
    expect(statusesOf(trackers[0]!.results)).toEqual(WHOLE_JOURNEY);
    expect(trackers[0]!.state).toEqual({ completed: true });
    await shop.orderOnceItIs(paying, 'PAID', 30_000);
    await payingTracker.received(2);
    expect(statusesOf(payingTracker.results)).toEqual(['PENDING_PAYMENT/1', 'PAID/2']);
    expect(await paymentEvents([paying], 'payment.succeeded')).toEqual([1]);
    expect(await transitionsTo([paying], 'PAID')).toEqual([1]);
    // Redis is stopped and started again inside: about 30 s here, the suite's default timeout.
  }, 120_000);
});
