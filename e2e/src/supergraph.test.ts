import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InternalTokens } from '@food/platform';
import { codes, startTestSupergraph } from './harness.js';

let t: Awaited<ReturnType<typeof startTestSupergraph>>;

beforeAll(async () => {
  t = await startTestSupergraph();
}, 120_000);
afterAll(async () => {
  await t?.stop();
});

const SIGN_UP = `mutation ($input: SignUpInput!) { signUp(input: $input) { token user { id name } } }`;
const LOG_IN = `mutation ($input: LogInInput!) { logIn(input: $input) { token expiresAt user { id email } } }`;
const PLACE_ORDER = `mutation ($input: PlaceOrderInput!) {
  placeOrder(input: $input) { id status total { amount currency } subtotal { amount } deliveryFee { amount } }
}`;
const PAY = `mutation ($input: PayForOrderInput!) { payForOrder(input: $input) { id status amount { amount currency } } }`;

interface MenuMeal {
  id: string;
  name: string;
  available: boolean;
  price: { amount: number; currency: string };
  addons: { id: string; name: string; maxQuantity: number; available: boolean; price: { amount: number } }[];
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('the supergraph, end to end through the gateway', () => {
  let aliceToken = '';
  let aliceId = '';
  let bobToken = '';
  let menu: MenuMeal[] = [];
  let aliceOrderId = '';

  it('answers health and readiness on the gateway and on every subgraph', async () => {
    const urls = [t.supergraph.gatewayUrl, ...Object.values(t.supergraph.subgraphUrls)];
    for (const url of urls) {
      expect((await fetch(new URL('/healthz', url))).status).toBe(200);
      const ready = await fetch(new URL('/readyz', url));
      expect(ready.status).toBe(200);
    }
    const gatewayReady = (await (await fetch(new URL('/readyz', t.supergraph.gatewayUrl))).json()) as {
      dependencies: Record<string, string>;
    };
    expect(gatewayReady.dependencies).toEqual({ users: 'ok', meals: 'ok', orders: 'ok', payments: 'ok' });
  });

  it('signs up and logs in through the gateway', async () => {
    const alice = await t.gateway(SIGN_UP, {
      input: { email: 'alice@example.com', password: 'alice-password', name: 'Alice' },
    });
    expect(alice.errors).toBeUndefined();
    aliceId = alice.data.signUp.user.id;
    const login = await t.gateway(LOG_IN, { input: { email: 'alice@example.com', password: 'alice-password' } });
    expect(login.data.logIn.user).toEqual({ id: aliceId, email: 'alice@example.com' });
    aliceToken = login.data.logIn.token;
    const bob = await t.gateway(SIGN_UP, {
      input: { email: 'bob@example.com', password: 'bob-password', name: 'Bob' },
    });
    bobToken = bob.data.signUp.token;
    const me = await t.gateway(`{ me { id name } }`, {}, bearer(aliceToken));
    expect(me.data.me).toEqual({ id: aliceId, name: 'Alice' });
  });

  it('lists the seeded menu with prices and add-ons', async () => {
    const result = await t.gateway(`{ meals(first: 100) { edges { node {
      id name available price { amount currency } addons { id name maxQuantity available price { amount } } } } } }`);
    expect(result.errors).toBeUndefined();
    menu = result.data.meals.edges.map((edge: { node: MenuMeal }) => edge.node);
    expect(menu.length).toBeGreaterThanOrEqual(5);
    expect(menu.some((meal) => !meal.available)).toBe(true);
    expect(
      menu.filter((meal) => meal.available && meal.addons.some((addon) => addon.available)).length,
    ).toBeGreaterThanOrEqual(2);
  });

  const withAddons = () => menu.filter((meal) => meal.available && meal.addons.some((addon) => addon.available));

  it('places an order with add-ons at menu prices and reads it back with fields from all four subgraphs', async () => {
    const [first, second] = withAddons() as [MenuMeal, MenuMeal];
    const addon = first.addons.find((a) => a.available)!;
    const placed = await t.gateway(
      PLACE_ORDER,
      {
        input: {
          deliveryAddress: '1 Analytical Engine Way',
          idempotencyKey: `order-${randomUUID()}`,
          items: [
            { mealId: first.id, quantity: 2, addons: [{ addonId: addon.id, quantity: 1 }] },
            { mealId: second.id, quantity: 1 },
          ],
        },
      },
      bearer(aliceToken),
    );
    expect(placed.errors).toBeUndefined();
    const order = placed.data.placeOrder;
    aliceOrderId = order.id;
    const expectedSubtotal = (first.price.amount + addon.price.amount) * 2 + second.price.amount;
    expect(order.status).toBe('PENDING_PAYMENT');
    expect(order.subtotal.amount).toBe(expectedSubtotal);
    expect(order.total.amount).toBe(expectedSubtotal + order.deliveryFee.amount);

    const read = await t.gateway(
      `query ($id: ID!) { order(id: $id) {
        id status total { amount }
        customer { id name email }
        items { mealName quantity unitPrice { amount } addons { name quantity } meal { id name description } }
        payment { status }
        statusHistory { from to }
      } }`,
      { id: order.id },
      bearer(aliceToken),
    );
    expect(read.errors).toBeUndefined();
    expect(read.data.order.customer).toEqual({ id: aliceId, name: 'Alice', email: 'alice@example.com' });
    expect(read.data.order.items[0]).toMatchObject({
      mealName: first.name,
      quantity: 2,
      unitPrice: { amount: first.price.amount },
      addons: [{ name: addon.name, quantity: 1 }],
      meal: { id: first.id, name: first.name },
    });
    expect(read.data.order.items[1].meal.name).toBe(second.name);
    expect(read.data.order.payment).toBeNull();
    expect(read.data.order.statusHistory).toEqual([{ from: null, to: 'PENDING_PAYMENT' }]);
  });

  it('places an order once per idempotency key: a retry gets it back, another request under the key is refused', async () => {
    const meal = withAddons()[0]!;
    const input = {
      deliveryAddress: '2 Analytical Engine Way',
      idempotencyKey: `order-${randomUUID()}`,
      items: [{ mealId: meal.id, quantity: 1 }],
    };
    const placed = await t.gateway(PLACE_ORDER, { input }, bearer(bobToken));
    expect(placed.errors).toBeUndefined();
    const orders = await t.count('orders', 'orders');
    const retried = await t.gateway(PLACE_ORDER, { input }, bearer(bobToken));
    expect(retried.data.placeOrder).toEqual(placed.data.placeOrder);
    const reused = await t.gateway(
      PLACE_ORDER,
      { input: { ...input, items: [{ mealId: meal.id, quantity: 2 }] } },
      bearer(bobToken),
    );
    expect(reused.errors?.map((error) => error.extensions?.code)).toEqual(['IDEMPOTENCY_KEY_REUSED']);
    expect(await t.count('orders', 'orders')).toBe(orders);
  });

  it('pays for the order once, whatever the retries, and shows the payment on the order', async () => {
    const input = { orderId: aliceOrderId, paymentToken: 'tok_sandbox_success', idempotencyKey: 'alice-order-1-try-1' };
    const paid = await t.gateway(PAY, { input }, bearer(aliceToken));
    expect(paid.errors).toBeUndefined();
    expect(paid.data.payForOrder.status).toBe('SUCCEEDED');
    const retried = await t.gateway(PAY, { input }, bearer(aliceToken));
    expect(retried.data.payForOrder.id).toBe(paid.data.payForOrder.id);
    expect(await t.count('payments', 'payments')).toBe(1);

    const mine = await t.gateway(
      `{ me { name orders(first: 5) { edges { node { id total { amount } payment { status amount { amount } } items { meal { name } } } } } } }`,
      {},
      bearer(aliceToken),
    );
    expect(mine.errors).toBeUndefined();
    const [edge] = mine.data.me.orders.edges;
    expect(edge.node.id).toBe(aliceOrderId);
    expect(edge.node.payment).toEqual({ status: 'SUCCEEDED', amount: { amount: edge.node.total.amount } });
  });

  describe('refuses bad or hostile input with a typed error and writes nothing', () => {
    const orderTables = ['orders', 'order_items', 'order_item_addons', 'order_status_changes'] as const;
    const snapshot = async () => ({
      orders: await Promise.all(orderTables.map((table) => t.count('orders', table))),
      payments: await t.count('payments', 'payments'),
      users: await t.count('users', 'users'),
    });

    const available = () => withAddons()[0]!;
    const otherMealsAddon = () => withAddons()[1]!.addons.find((a) => a.available)!;
    const unavailable = () => menu.find((meal) => !meal.available)!;
    const order = (items: unknown, deliveryAddress = '1 Analytical Engine Way') => ({
      input: { items, deliveryAddress, idempotencyKey: `order-${randomUUID()}` },
    });

    const cases: [string, () => [string, Record<string, unknown>, Record<string, string>], string][] = [
      [
        'a quantity of the wrong type',
        () => [PLACE_ORDER, order([{ mealId: available().id, quantity: 'two' }]), bearer(aliceToken)],
        'BAD_USER_INPUT',
      ],
      [
        'a negative quantity',
        () => [PLACE_ORDER, order([{ mealId: available().id, quantity: -1 }]), bearer(aliceToken)],
        'BAD_USER_INPUT',
      ],
      [
        'a quantity over the limit',
        () => [PLACE_ORDER, order([{ mealId: available().id, quantity: 10_000 }]), bearer(aliceToken)],
        'BAD_USER_INPUT',
      ],
      ['no items', () => [PLACE_ORDER, order([]), bearer(aliceToken)], 'BAD_USER_INPUT'],
      [
        'a malformed meal id',
        () => [PLACE_ORDER, order([{ mealId: "1' OR '1'='1", quantity: 1 }]), bearer(aliceToken)],
        'BAD_USER_INPUT',
      ],
      [
        'an unknown meal',
        () => [
          PLACE_ORDER,
          order([{ mealId: '00000000-0000-4000-8000-00000000abcd', quantity: 1 }]),
          bearer(aliceToken),
        ],
        'MEAL_UNAVAILABLE',
      ],
      [
        'an unavailable meal',
        () => [PLACE_ORDER, order([{ mealId: unavailable().id, quantity: 1 }]), bearer(aliceToken)],
        'MEAL_UNAVAILABLE',
      ],
      [
        'an add-on of another meal',
        () => [
          PLACE_ORDER,
          order([{ mealId: available().id, quantity: 1, addons: [{ addonId: otherMealsAddon().id, quantity: 1 }] }]),
          bearer(aliceToken),
        ],
        'ADDON_NOT_ON_MEAL',
      ],
      [
        'too many of an add-on',
        () => {
          const meal = available();
          const addon = meal.addons.find((a) => a.available)!;
          return [
            PLACE_ORDER,
            order([{ mealId: meal.id, quantity: 1, addons: [{ addonId: addon.id, quantity: addon.maxQuantity + 1 }] }]),
            bearer(aliceToken),
          ];
        },
        'QUANTITY_OUT_OF_RANGE',
      ],
      [
        'an oversized delivery address',
        () => [PLACE_ORDER, order([{ mealId: available().id, quantity: 1 }], 'x'.repeat(5_000)), bearer(aliceToken)],
        'BAD_USER_INPUT',
      ],
      [
        'an anonymous order',
        () => [PLACE_ORDER, order([{ mealId: available().id, quantity: 1 }]), {}],
        'UNAUTHENTICATED',
      ],
      [
        "another customer's order id",
        () => [`query ($id: ID!) { order(id: $id) { id total { amount } } }`, { id: aliceOrderId }, bearer(bobToken)],
        'NOT_FOUND',
      ],
      [
        "paying for another customer's order",
        () => [
          PAY,
          { input: { orderId: aliceOrderId, paymentToken: 'tok_sandbox_success', idempotencyKey: 'bob-steals-1' } },
          bearer(bobToken),
        ],
        'NOT_FOUND',
      ],
      [
        'a card number instead of a token',
        () => [
          PAY,
          { input: { orderId: aliceOrderId, paymentToken: '4242 4242 4242 4242', idempotencyKey: 'alice-card-1' } },
          bearer(aliceToken),
        ],
        'BAD_USER_INPUT',
      ],
      [
        'an idempotency key reused for another request',
        () => [
          PAY,
          {
            input: {
              orderId: aliceOrderId,
              paymentToken: 'tok_sandbox_decline',
              idempotencyKey: 'alice-order-1-try-1',
            },
          },
          bearer(aliceToken),
        ],
        'IDEMPOTENCY_KEY_REUSED',
      ],
      [
        'a forged session token',
        () => [`{ me { id } }`, {}, { authorization: `Bearer ${aliceToken.slice(0, -4)}AAAA` }],
        'UNAUTHENTICATED',
      ],
      [
        'an oversized sign-up name',
        () => [
          SIGN_UP,
          { input: { email: 'eve@example.com', password: 'eve-password', name: 'e'.repeat(10_000) } },
          {},
        ],
        'BAD_USER_INPUT',
      ],
      [
        'a field that does not exist',
        () => [`{ meals(first: 1) { edges { node { secretCost } } } }`, {}, {}],
        'GRAPHQL_VALIDATION_FAILED',
      ],
      [
        'a page size over the limit',
        () => [`{ meals(first: 101) { edges { node { id } } } }`, {}, {}],
        'BAD_USER_INPUT',
      ],
    ];

    it.each(cases)('%s', async (_label, build, expectedCode) => {
      const before = await snapshot();
      const [query, variables, headers] = build();
      const response = await t.gateway(query, variables, headers);
      expect(codes(response)).toContain(expectedCode);
      const body = JSON.stringify(response);
      expect(body).not.toMatch(/\bat [\w.<>]+ \(|stacktrace|node_modules/);
      expect(await snapshot()).toEqual(before);
    });
  });

  describe('identity cannot be forged', () => {
    it('ignores identity headers a client sends to the gateway', async () => {
      const forged = await new InternalTokens('some-other-secret-that-is-long-enough-0123').sign({
        kind: 'user',
        userId: aliceId,
        role: 'ADMIN',
      });
      const response = await t.gateway(`{ me { id } }`, {}, { 'x-internal-token': forged, 'x-user-id': aliceId });
      expect(response.errors).toBeUndefined();
      expect(response.data.me).toBeNull();
    });

    it('refuses a subgraph call without a valid internal token', async () => {
      const direct = await t.post(t.supergraph.subgraphUrls.orders, {
        query: '{ myOrders { edges { node { id } } } }',
      });
      expect(direct.status).toBe(401);
      expect(codes(direct)).toEqual(['UNAUTHENTICATED']);
      const forged = await new InternalTokens('some-other-secret-that-is-long-enough-0123').sign({
        kind: 'user',
        userId: aliceId,
        role: 'CUSTOMER',
      });
      const withForged = await t.post(
        t.supergraph.subgraphUrls.orders,
        { query: '{ myOrders { edges { node { id } } } }' },
        { 'x-internal-token': forged },
      );
      expect(withForged.status).toBe(401);
    });
  });
});
