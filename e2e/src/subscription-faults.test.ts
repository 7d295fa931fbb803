import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'graphql-ws';
import { freePort } from '@food/platform/testing';
import { startTestSupergraph } from './harness.js';
import { ServiceProcess } from './service-process.js';
import { Shop } from './shop.js';
import { KITCHEN_FLOW, TRACK, record, statusesOf, wsClient, WHOLE_JOURNEY } from './tracking-clients.js';

/**
 * A subgraph that blinks under live subscribers: a gateway (its own process) resolves its subscribers'
 * orders through an orders subgraph that is its own process too, SIGKILLed just as the payments'
 * PAID changes reach the gateway, and started again. The changes themselves are made through the
 * test supergraph, whose orders subgraph stays up: only the subscriptions' resolution is cut off.
 */
let t: Awaited<ReturnType<typeof startTestSupergraph>>;
let shop: Shop;
let orders: ServiceProcess;
let gateway: ServiceProcess;
const clients: Client[] = [];

function client(token: string) {
  const created = wsClient(gateway.url, token);
  clients.push(created);
  return created;
}

beforeAll(async () => {
  t = await startTestSupergraph();
  shop = await new Shop(t.post, t.supergraph.gatewayUrl).open();
  orders = await ServiceProcess.start('orders', { ...t.processEnv, ORDERS_PORT: String(await freePort()) });
  gateway = await ServiceProcess.start('gateway', {
    ...t.processEnv,
    NODE_ENV: 'production',
    GATEWAY_PORT: String(await freePort()),
    ORDERS_SUBGRAPH_URL: orders.url,
  });
}, 180_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.dispose()));
  await Promise.all([gateway?.stop(), orders?.stop()]);
  await t?.stop();
});

describe('a subgraph killed under live subscribers', () => {
  it('loses no status: every subscriber gets every change once and in order, and a subscribe during the outage waits', async () => {
    const orderIds: string[] = [];
    for (let i = 0; i < 8; i++) orderIds.push(await shop.placeOrder());
    const trackers = orderIds.slice(0, 6).map((id) => record(client(shop.tokens.ada), TRACK, { id }));
    await Promise.all(trackers.map((tracker) => tracker.received(1)));

    // Pay, and kill the orders subgraph the gateway resolves through as the PAID changes arrive.
    await Promise.all(orderIds.map((id) => shop.pay(id)));
    await orders.kill();
    // While it is down: every order reaches PAID and the kitchen accepts them; someone subscribes.
    for (const id of orderIds) await shop.orderOnceItIs(id, 'PAID');
    for (const id of orderIds) await shop.changeStatus(id, 'ACCEPTED');
    const lateTrackers = orderIds.slice(6).map((id) => record(client(shop.tokens.ada), TRACK, { id }));
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    for (const tracker of [...trackers, ...lateTrackers]) {
      expect(tracker.state, 'nothing ended while the subgraph was down').toEqual({ completed: false });
    }
    expect(lateTrackers.every((tracker) => tracker.results.length === 0)).toBe(true);
    await orders.start();
    // Once the subgraph is back, the subscribe made during the outage gets its current state.
    await Promise.all(lateTrackers.map((tracker) => tracker.received(1)));

    for (const status of KITCHEN_FLOW.slice(1)) for (const id of orderIds) await shop.changeStatus(id, status);
    await Promise.all([...trackers, ...lateTrackers].map((tracker) => tracker.ended(30_000)));
    for (const tracker of trackers) {
      expect(tracker.state).toEqual({ completed: true });
      expect(statusesOf(tracker.results)).toEqual(WHOLE_JOURNEY);
      // Never a failed resolution in place of a change.
      for (const result of tracker.results) expect(result.errors).toBeUndefined();
    }
    for (const tracker of lateTrackers) {
      expect(tracker.state).toEqual({ completed: true });
      // Subscribed at ACCEPTED: its current state first (once the subgraph was back), then the rest.
      expect(statusesOf(tracker.results)).toEqual(WHOLE_JOURNEY.slice(WHOLE_JOURNEY.indexOf('ACCEPTED/3')));
    }
  }, 90_000);
});
