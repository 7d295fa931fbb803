import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codes, startTestSupergraph } from './harness.js';
import { Shop } from './shop.js';
import { KITCHEN_FLOW } from './tracking-clients.js';

/**
 * The order lifecycle across services: payments' outcome reaches orders only through the outbox,
 * Redis and the orders worker; a cancelled paid order is refunded by the payments worker's job.
 */
let t: Awaited<ReturnType<typeof startTestSupergraph>>;
let shop: Shop;

async function placeAndPay(paymentToken: string) {
  const orderId = await shop.placeOrder();
  await shop.pay(orderId, paymentToken);
  return orderId;
}

beforeAll(async () => {
  t = await startTestSupergraph();
  shop = await new Shop(t.post, t.supergraph.gatewayUrl).open();
}, 120_000);
afterAll(async () => {
  await t?.stop();
});

describe('order lifecycle through the gateway, with the workers on Redis', () => {
  it('becomes PAID through the payment event, then the kitchen takes it to DELIVERED', async () => {
    const orderId = await placeAndPay('tok_sandbox_success');
    const paid = await shop.orderOnceItIs(orderId, 'PAID');
    expect(paid.payment).toEqual({ status: 'SUCCEEDED' });
    for (const status of KITCHEN_FLOW) await shop.changeStatus(orderId, status);
    const delivered = await shop.orderOnceItIs(orderId, 'DELIVERED');
    expect(
      delivered.statusHistory.map((change: { to: string; actor: string }) => `${change.to}/${change.actor}`),
    ).toEqual([
      'PENDING_PAYMENT/CUSTOMER',
      'PAID/SYSTEM',
      'ACCEPTED/STAFF',
      'PREPARING/STAFF',
      'READY/STAFF',
      'OUT_FOR_DELIVERY/STAFF',
      'DELIVERED/STAFF',
    ]);
    const refused = await t.gateway(
      `mutation ($input: ChangeOrderStatusInput!) { changeOrderStatus(input: $input) { status } }`,
      { input: { orderId, status: 'PREPARING' } },
      shop.headers('chef'),
    );
    expect(codes(refused)).toEqual(['INVALID_STATUS_TRANSITION']);
  });

  it("shows paid orders in the kitchen's queue, oldest first with counts, to staff only", async () => {
    const [older, newer] = [await placeAndPay('tok_sandbox_success'), await placeAndPay('tok_sandbox_success')];
    await shop.orderOnceItIs(older, 'PAID');
    await shop.orderOnceItIs(newer, 'PAID');
    const QUEUE = `query ($statuses: [OrderStatus!]!) { kitchenQueue(statuses: $statuses, first: 50) {
      edges { node { id status items { quantity meal { name } } } } counts { status count } } }`;
    const { kitchenQueue } = await shop.call(QUEUE, { statuses: ['PAID', 'ACCEPTED'] }, 'chef');
    const ids = kitchenQueue.edges.map((edge: { node: { id: string } }) => edge.node.id);
    expect(ids.indexOf(older)).toBeGreaterThanOrEqual(0);
    expect(ids.indexOf(older)).toBeLessThan(ids.indexOf(newer));
    // Fields of the meals subgraph, joined through the gateway.
    expect(kitchenQueue.edges[ids.indexOf(older)].node.items[0].meal.name).toEqual(expect.any(String));
    const inStatus = (status: string) =>
      kitchenQueue.edges.filter((edge: { node: { status: string } }) => edge.node.status === status).length;
    expect(kitchenQueue.counts).toEqual([
      { status: 'PAID', count: inStatus('PAID') },
      { status: 'ACCEPTED', count: inStatus('ACCEPTED') },
    ]);
    const refused = await t.gateway(QUEUE, { statuses: ['PAID'] }, shop.headers('ada'));
    expect(codes(refused)).toEqual(['FORBIDDEN']);
    expect(codes(await t.gateway(QUEUE, { statuses: ['PAID'] }))).toEqual(['UNAUTHENTICATED']);
    for (const orderId of [older, newer]) await shop.changeStatus(orderId, 'ACCEPTED');
  });

  it('becomes PAYMENT_FAILED on a decline', async () => {
    const orderId = await placeAndPay('tok_sandbox_decline');
    await shop.orderOnceItIs(orderId, 'PAYMENT_FAILED');
  });

  it('refunds a paid order the customer cancels, once, and ends REFUNDED', async () => {
    const orderId = await placeAndPay('tok_sandbox_success');
    await shop.orderOnceItIs(orderId, 'PAID');
    expect(await shop.cancel(orderId)).toBe('REFUND_PENDING');
    const refunded = await shop.orderOnceItIs(orderId, 'REFUNDED');
    expect(refunded.payment).toEqual({ status: 'REFUNDED' });
    expect(refunded.statusHistory.at(-1)).toEqual({ from: 'REFUND_PENDING', to: 'REFUNDED', actor: 'SYSTEM' });
    expect(await t.count('payments', 'processed_events')).toBeGreaterThanOrEqual(1);
  });
});
