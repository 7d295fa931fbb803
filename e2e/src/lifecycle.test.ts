import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codes, startTestSupergraph } from './harness.js';

/**
 * The order lifecycle across services: payments' outcome reaches orders only through the outbox,
 * Redis and the orders worker; a cancelled paid order is refunded by the payments worker's job.
 */
let t: Awaited<ReturnType<typeof startTestSupergraph>>;
let customer: Record<string, string>;
let chef: Record<string, string>;
let mealId = '';

const LOG_IN = `mutation ($input: LogInInput!) { logIn(input: $input) { token } }`;
const PLACE = `mutation ($input: PlaceOrderInput!) { placeOrder(input: $input) { id status } }`;
const PAY = `mutation ($input: PayForOrderInput!) { payForOrder(input: $input) { id status } }`;
const ORDER = `query ($id: ID!) { order(id: $id) { id status version payment { status }
  statusHistory { from to actor } } }`;
const CHANGE = `mutation ($input: ChangeOrderStatusInput!) { changeOrderStatus(input: $input) { status version } }`;
const CANCEL = `mutation ($input: CancelOrderInput!) { cancelOrder(input: $input) { status } }`;

async function logIn(email: string, password: string) {
  const response = await t.gateway(LOG_IN, { input: { email, password } });
  return { authorization: `Bearer ${response.data.logIn.token}` };
}

async function placeAndPay(token: string) {
  const placed = await t.gateway(
    PLACE,
    {
      input: { deliveryAddress: '1 Lifecycle Lane', items: [{ mealId, quantity: 1 }] },
    },
    customer,
  );
  const orderId = placed.data.placeOrder.id as string;
  const paid = await t.gateway(
    PAY,
    {
      input: { orderId, paymentToken: token, idempotencyKey: `key-${randomUUID()}` },
    },
    customer,
  );
  expect(paid.errors).toBeUndefined();
  return orderId;
}

async function orderOnceItIs(orderId: string, status: string) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const response = await t.gateway(ORDER, { id: orderId }, chef);
    if (response.data?.order?.status === status) return response.data.order;
    if (Date.now() > deadline) {
      throw new Error(`order ${orderId} never reached ${status}: ${JSON.stringify(response.data?.order)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

beforeAll(async () => {
  t = await startTestSupergraph();
  customer = await logIn('ada@example.com', 'ada-demo-password');
  chef = await logIn('chef@example.com', 'chef-demo-password');
  const menu = await t.gateway(`{ meals(first: 1, filter: { available: true }) { edges { node { id } } } }`);
  mealId = menu.data.meals.edges[0].node.id;
}, 120_000);
afterAll(async () => {
  await t?.stop();
});

describe('order lifecycle through the gateway, with the workers on Redis', () => {
  it('becomes PAID through the payment event, then the kitchen takes it to DELIVERED', async () => {
    const orderId = await placeAndPay('tok_sandbox_success');
    const paid = await orderOnceItIs(orderId, 'PAID');
    expect(paid.payment).toEqual({ status: 'SUCCEEDED' });
    for (const status of ['ACCEPTED', 'PREPARING', 'READY', 'OUT_FOR_DELIVERY', 'DELIVERED']) {
      const response = await t.gateway(CHANGE, { input: { orderId, status } }, chef);
      expect(response.errors).toBeUndefined();
    }
    const delivered = await orderOnceItIs(orderId, 'DELIVERED');
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
    const refused = await t.gateway(CHANGE, { input: { orderId, status: 'PREPARING' } }, chef);
    expect(codes(refused)).toEqual(['INVALID_STATUS_TRANSITION']);
  });

  it('becomes PAYMENT_FAILED on a decline', async () => {
    const orderId = await placeAndPay('tok_sandbox_decline');
    await orderOnceItIs(orderId, 'PAYMENT_FAILED');
  });

  it('refunds a paid order the customer cancels, once, and ends REFUNDED', async () => {
    const orderId = await placeAndPay('tok_sandbox_success');
    await orderOnceItIs(orderId, 'PAID');
    const cancelled = await t.gateway(CANCEL, { input: { orderId } }, customer);
    expect(cancelled.data.cancelOrder.status).toBe('REFUND_PENDING');
    const refunded = await orderOnceItIs(orderId, 'REFUNDED');
    expect(refunded.payment).toEqual({ status: 'REFUNDED' });
    expect(refunded.statusHistory.at(-1)).toEqual({ from: 'REFUND_PENDING', to: 'REFUNDED', actor: 'SYSTEM' });
    expect(await t.count('payments', 'processed_events')).toBeGreaterThanOrEqual(1);
  });
});
