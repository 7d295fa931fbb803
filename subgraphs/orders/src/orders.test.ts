import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ApolloServer } from '@apollo/server';
import { PrismaPg } from '@prisma/adapter-pg';
import {
  createLogger,
  DomainError,
  ErrorCode,
  newEvent,
  newId,
  parseEvent,
  PersonalDataCipher,
  type Caller,
  type DomainEvent,
} from '@food/platform';
import { errorCodes, execute, startTestSubgraphServer, testSecrets } from '@food/platform/testing';
import {
  createTestDatabaseAt,
  createTestDatabaseClient,
  withPostgres,
  type TestDatabaseClient,
} from '@food/prisma/testing';
import { loadOrdersConfig } from './config.js';
import { createContext, type SubgraphContext } from './context.js';
import { ordersCipher, ordersTypeDefs } from './app.js';
import { PrismaOrdersStore } from './data/orders-store.js';
import { PrismaClient } from './data/generated/prisma/client.js';
import { OrdersService, type MealCatalog, type Order } from './domain/orders.js';
import { protectPersonalData } from './jobs/protect-personal-data.js';
import { sweepOrdersPersonalData } from './data/personal-data-sweep.js';
import type { MenuMeal } from './domain/pricing.js';
import { resolvers } from './resolvers/index.js';

const PIZZA = '10000000-0000-4000-8000-000000000001';
const SALAD = '10000000-0000-4000-8000-000000000002';
const SOLD_OUT = '10000000-0000-4000-8000-000000000003';
const UNKNOWN_MEAL = '10000000-0000-4000-8000-0000000000ff';
const CHEESE = '20000000-0000-4000-8000-000000000001';
const DRESSING = '20000000-0000-4000-8000-000000000002';

const ADA = '30000000-0000-4000-8000-000000000001';
const BOB = '30000000-0000-4000-8000-000000000002';
const ada: Caller = { kind: 'user', userId: ADA, role: 'CUSTOMER' };
const bob: Caller = { kind: 'user', userId: BOB, role: 'CUSTOMER' };
const staff: Caller = { kind: 'user', userId: '30000000-0000-4000-8000-000000000003', role: 'STAFF' };
const payments: Caller = { kind: 'service', service: 'payments' };
const anonymous: Caller = { kind: 'anonymous' };

const eur = (amount: number) => ({ amount, currency: 'EUR' });
const MENU: MenuMeal[] = [
  {
    id: PIZZA,
    name: 'Margherita',
    available: true,
    price: eur(1250),
    addons: [{ id: CHEESE, name: 'Extra cheese', available: true, maxQuantity: 3, price: eur(150) }],
  },
  {
    id: SALAD,
    name: 'Salad',
    available: true,
    price: eur(800),
    addons: [{ id: DRESSING, name: 'Dressing', available: true, maxQuantity: 2, price: eur(50) }],
  },
  { id: SOLD_OUT, name: 'Sold out', available: false, price: eur(900), addons: [] },
];

/** Meals, in memory: records every call so tests can see there is exactly one per order. */
class FakeMealCatalog implements MealCatalog {
  calls: string[][] = [];
  down = false;
  async findMeals(ids: readonly string[]) {
    this.calls.push([...ids]);
    if (this.down) throw new DomainError(ErrorCode.UPSTREAM_UNAVAILABLE, 'A service this needs is unavailable');
    return new Map(MENU.filter((meal) => ids.includes(meal.id)).map((meal) => [meal.id, meal]));
  }
}

let database: TestDatabaseClient<PrismaClient<'query'>>;
let prisma: PrismaClient<'query'>;
let sqlQueries: string[];
let orders: OrdersService;
let cipher: PersonalDataCipher;
let server: ApolloServer<SubgraphContext>;
const meals = new FakeMealCatalog();
const key = (byte: number) => Buffer.alloc(32, byte).toString('base64');

beforeAll(async () => {
  database = await createTestDatabaseClient('orders', PrismaClient, PrismaPg);
  ({ prisma, sqlQueries } = database);
  const config = loadOrdersConfig({
    ...testSecrets,
    ORDERS_DATABASE_URL: database.url,
    MEALS_SUBGRAPH_URL: 'http://127.0.0.1:1/graphql',
    ORDERS_ENCRYPTION_KEYS: `k1:${key(1)},k2:${key(2)}`,
    ORDERS_ENCRYPTION_ACTIVE_KEY_ID: 'k1',
  });
  cipher = ordersCipher(config);
  orders = new OrdersService(new PrismaOrdersStore(prisma, cipher), meals, {
    deliveryFeeAmount: config.ORDERS_DELIVERY_FEE_MINOR,
  });
  server = await startTestSubgraphServer<SubgraphContext>({ typeDefs: ordersTypeDefs, resolvers });
});

afterAll(async () => {
  await server?.stop();
  await database?.close();
});

beforeEach(() => {
  meals.calls = [];
  meals.down = false;
});

const run = (caller: Caller, query: string, variables?: Record<string, unknown>) =>
  execute<Record<string, any>, SubgraphContext>(server, createContext(caller, orders), query, variables);

const ORDER_FIELDS = `id status deliveryAddress version createdAt updatedAt
  customer { id }
  subtotal { amount currency } deliveryFee { amount currency } total { amount currency }
  items { id meal { id } mealName quantity unitPrice { amount currency } lineTotal { amount currency }
    addons { addonId name quantity unitPrice { amount currency } } }
  statusHistory { from to at reason }`;
const PLACE_ORDER = `mutation ($input: PlaceOrderInput!) { placeOrder(input: $input) { ${ORDER_FIELDS} } }`;
const ORDER = `query ($id: ID!) { order(id: $id) { ${ORDER_FIELDS} } }`;
const MY_ORDERS = `query ($first: Int, $after: String) {
  myOrders(first: $first, after: $after) { edges { cursor node { id createdAt } } pageInfo { hasNextPage endCursor } } }`;

const tableCounts = async () => ({
  orders: await prisma.order.count(),
  items: await prisma.orderItem.count(),
  addons: await prisma.orderItemAddon.count(),
  changes: await prisma.orderStatusChange.count(),
  outbox: await prisma.outboxEvent.count(),
  keys: await prisma.orderIdempotencyKey.count(),
});

/** A new key for each order a client means to place. */
const newKey = () => `order-${randomUUID()}`;
const placeFor = (
  caller: Caller,
  items: unknown[] = [{ mealId: SALAD, quantity: 1 }],
  idempotencyKey = newKey(),
  deliveryAddress = '1 Baker Street, London',
) => run(caller, PLACE_ORDER, { input: { items, deliveryAddress, idempotencyKey } });

describe('orders subgraph', () => {
  let adaOrderId = '';

  it('places an order at menu prices, with add-ons, in one meals call, and writes it all', async () => {
    const before = await tableCounts();
    const result = await run(ada, PLACE_ORDER, {
      input: {
        items: [
          { mealId: PIZZA, quantity: 2, addons: [{ addonId: CHEESE, quantity: 2 }] },
          { mealId: SALAD, quantity: 1, addons: [{ addonId: DRESSING }] },
          { mealId: PIZZA, quantity: 1 },
        ],
        deliveryAddress: '  12 St James Square, London  ',
        idempotencyKey: newKey(),
      },
    });
    expect(result.errors).toBeUndefined();
    const order = result.data!.placeOrder;
    adaOrderId = order.id;
    expect(meals.calls).toEqual([[PIZZA, SALAD]]);
    expect(order).toMatchObject({
      status: 'PENDING_PAYMENT',
      deliveryAddress: '12 St James Square, London',
      version: 1,
      customer: { id: ADA },
      // (1250 + 2 x 150) x 2 = 3100; (800 + 50) x 1 = 850; 1250 x 1 = 1250.
      subtotal: eur(5200),
      deliveryFee: eur(299),
      total: eur(5499),
    });
    expect(order.items.map((item: any) => ({ ...item, id: undefined }))).toEqual([
      {
        id: undefined,
        meal: { id: PIZZA },
        mealName: 'Margherita',
        quantity: 2,
        unitPrice: eur(1250),
        lineTotal: eur(3100),
        addons: [{ addonId: CHEESE, name: 'Extra cheese', quantity: 2, unitPrice: eur(150) }],
      },
      {
        id: undefined,
        meal: { id: SALAD },
        mealName: 'Salad',
        quantity: 1,
        unitPrice: eur(800),
        lineTotal: eur(850),
        addons: [{ addonId: DRESSING, name: 'Dressing', quantity: 1, unitPrice: eur(50) }],
      },
      {
        id: undefined,
        meal: { id: PIZZA },
        mealName: 'Margherita',
        quantity: 1,
        unitPrice: eur(1250),
        lineTotal: eur(1250),
        addons: [],
      },
    ]);
    expect(order.statusHistory).toEqual([{ from: null, to: 'PENDING_PAYMENT', at: order.createdAt, reason: null }]);
    expect(await tableCounts()).toEqual({
      orders: before.orders + 1,
      items: before.items + 3,
      addons: before.addons + 2,
      changes: before.changes + 1,
      outbox: before.outbox + 1,
      keys: before.keys + 1,
    });
    const [change] = await prisma.orderStatusChange.findMany({ where: { orderId: adaOrderId } });
    expect(change).toMatchObject({ fromStatus: null, toStatus: 'PENDING_PAYMENT', changedBy: ADA });
    const positions = await prisma.orderItem.findMany({ where: { orderId: adaOrderId }, orderBy: { position: 'asc' } });
    expect(positions.map((item) => [item.position, item.mealId])).toEqual([
      [0, PIZZA],
      [1, SALAD],
      [2, PIZZA],
    ]);
  });

  const line = (overrides: Record<string, unknown> = {}) => ({ mealId: PIZZA, quantity: 1, ...overrides });
  it.each([
    ['an unknown meal', [line({ mealId: UNKNOWN_MEAL })], 'MEAL_UNAVAILABLE', { mealId: UNKNOWN_MEAL }],
    ['an unavailable meal', [line(), line({ mealId: SOLD_OUT })], 'MEAL_UNAVAILABLE', { mealId: SOLD_OUT }],
    [
      'an add-on of another meal',
      [line({ addons: [{ addonId: DRESSING, quantity: 1 }] })],
      'ADDON_NOT_ON_MEAL',
      { mealId: PIZZA, addonId: DRESSING },
    ],
    [
      'an add-on over its maximum',
      [line({ addons: [{ addonId: CHEESE, quantity: 4 }] })],
      'QUANTITY_OUT_OF_RANGE',
      { addonId: CHEESE, max: 3 },
    ],
    ['a negative quantity', [line({ quantity: -1 })], 'BAD_USER_INPUT', { field: 'items.0.quantity' }],
    ['a quantity over 50', [line(), line({ quantity: 51 })], 'BAD_USER_INPUT', { field: 'items.1.quantity' }],
    ['zero items', [], 'BAD_USER_INPUT', { field: 'items' }],
    ['51 items', Array.from({ length: 51 }, () => line()), 'BAD_USER_INPUT', { field: 'items' }],
    ['a malformed meal id', [line({ mealId: 'pizza' })], 'BAD_USER_INPUT', { field: 'items.0.mealId' }],
    [
      'a malformed add-on id',
      [line({ addons: [{ addonId: 'cheese', quantity: 1 }] })],
      'BAD_USER_INPUT',
      { field: 'items.0.addons.0.addonId' },
    ],
    ['an add-on quantity of 0', [line({ addons: [{ addonId: CHEESE, quantity: 0 }] })], 'BAD_USER_INPUT', {}],
    [
      'the same add-on twice in one line',
      [line({ addons: [{ addonId: CHEESE }, { addonId: CHEESE }] })],
      'BAD_USER_INPUT',
      { field: 'items.0.addons.1.addonId' },
    ],
  ])('refuses %s, and writes nothing', async (_label, items, code, extensions) => {
    const before = await tableCounts();
    const result = await placeFor(ada, items);
    expect(errorCodes(result)).toEqual([code]);
    expect(result.errors![0]!.extensions).toMatchObject(extensions);
    expect(await tableCounts()).toEqual(before);
  });

  it.each([
    ['an oversized delivery address', 'x'.repeat(501)],
    ['a delivery address short once trimmed', '   ab   '],
  ])('refuses %s, and writes nothing', async (_label, deliveryAddress) => {
    const before = await tableCounts();
    const result = await placeFor(ada, [line()], newKey(), deliveryAddress);
    expect(errorCodes(result)).toEqual(['BAD_USER_INPUT']);
    expect(result.errors![0]!.extensions!.field).toBe('deliveryAddress');
    expect(meals.calls).toEqual([]);
    expect(await tableCounts()).toEqual(before);
  });

  it('refuses an anonymous caller, and writes nothing', async () => {
    const before = await tableCounts();
    const result = await placeFor(anonymous);
    expect(errorCodes(result)).toEqual(['UNAUTHENTICATED']);
    expect(meals.calls).toEqual([]);
    expect(await tableCounts()).toEqual(before);
  });

  it('answers UPSTREAM_UNAVAILABLE when meals is down, and writes nothing', async () => {
    const before = await tableCounts();
    meals.down = true;
    const result = await placeFor(ada);
    expect(errorCodes(result)).toEqual(['UPSTREAM_UNAVAILABLE']);
    expect(await tableCounts()).toEqual(before);
  });

  it('writes nothing when the transaction fails half-way', async () => {
    const before = await tableCounts();
    sqlQueries.length = 0;
    const store = new PrismaOrdersStore(prisma, cipher);
    const broken = await store
      .create({
        id: randomUUID(),
        customerId: ADA,
        currency: 'EUR',
        subtotalAmount: 1,
        deliveryFeeAmount: 0,
        totalAmount: 1,
        deliveryAddress: '1 Baker Street',
        status: 'PENDING_PAYMENT',
        changedBy: ADA,
        events: [],
        idempotency: { key: `half-way-${randomUUID()}`, requestHash: '0'.repeat(64) },
        lines: [
          {
            mealId: PIZZA,
            mealName: 'Margherita',
            unitPriceAmount: 1,
            quantity: 1,
            lineTotalAmount: 1,
            // Not a UUID: the add-on insert fails after the order and its lines were written.
            addons: [{ addonId: 'not-a-uuid', name: 'Broken', unitPriceAmount: 1, quantity: 1 }],
          },
        ],
      })
      .catch((error: unknown) => error);
    expect(broken).toBeInstanceOf(Error);
    // The order and its line were sent before the add-on failed; the rollback undid them.
    expect(sqlQueries.some((sql) => /INSERT INTO "public"\."orders"/.test(sql))).toBe(true);
    expect(sqlQueries.some((sql) => /INSERT INTO "public"\."order_items"/.test(sql))).toBe(true);
    expect(await tableCounts()).toEqual(before);
  });

  it('shows an order to its customer, staff and services; others get NOT_FOUND', async () => {
    const own = await run(ada, ORDER, { id: adaOrderId });
    expect(own.errors).toBeUndefined();
    expect(own.data!.order).toMatchObject({ id: adaOrderId, total: eur(5499), customer: { id: ADA } });
    expect(own.data!.order.items).toHaveLength(3);

    const other = await run(bob, ORDER, { id: adaOrderId });
    expect(errorCodes(other)).toEqual(['NOT_FOUND']);
    expect(other.data?.order ?? null).toBeNull();
    const missing = await run(bob, ORDER, { id: '40000000-0000-4000-8000-000000000000' });
    expect(errorCodes(missing)).toEqual(['NOT_FOUND']);
    expect(missing.errors![0]!.message.replace(/[0-9a-f-]{36}/, 'ID')).toBe(
      other.errors![0]!.message.replace(/[0-9a-f-]{36}/, 'ID'),
    );

    const asStaff = await run(staff, ORDER, { id: adaOrderId });
    expect(asStaff.data!.order.id).toBe(adaOrderId);
    // Exactly what the payments service asks.
    const asService = await run(
      payments,
      `query ($id: ID!) { order(id: $id) { id status total { amount currency } customer { id } } }`,
      { id: adaOrderId },
    );
    expect(asService.data!.order).toEqual({
      id: adaOrderId,
      status: 'PENDING_PAYMENT',
      total: eur(5499),
      customer: { id: ADA },
    });
  });

  it('refuses order(id) with a malformed id or without a caller', async () => {
    expect(errorCodes(await run(ada, ORDER, { id: 'not-a-uuid' }))).toEqual(['BAD_USER_INPUT']);
    expect(errorCodes(await run(anonymous, ORDER, { id: adaOrderId }))).toEqual(['UNAUTHENTICATED']);
  });

  it('pages through my orders newest first, and only mine', async () => {
    await placeFor(bob);
    for (let i = 0; i < 4; i += 1) expect((await placeFor(ada)).errors).toBeUndefined();
    const expected = (
      await prisma.order.findMany({ where: { customerId: ADA }, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] })
    ).map((order) => order.id);
    expect(expected).toHaveLength(5);

    const first = await run(ada, MY_ORDERS, { first: 2 });
    expect(first.errors).toBeUndefined();
    const page1 = first.data!.myOrders;
    expect(page1.edges.map((edge: any) => edge.node.id)).toEqual(expected.slice(0, 2));
    expect(page1.pageInfo).toEqual({ hasNextPage: true, endCursor: page1.edges[1].cursor });

    const page2 = (await run(ada, MY_ORDERS, { first: 2, after: page1.pageInfo.endCursor })).data!.myOrders;
    expect(page2.edges.map((edge: any) => edge.node.id)).toEqual(expected.slice(2, 4));
    expect(page2.pageInfo.hasNextPage).toBe(true);

    const page3 = (await run(ada, MY_ORDERS, { first: 2, after: page2.pageInfo.endCursor })).data!.myOrders;
    expect(page3.edges.map((edge: any) => edge.node.id)).toEqual(expected.slice(4));
    expect(page3.pageInfo.hasNextPage).toBe(false);

    const all = (await run(ada, MY_ORDERS, {})).data!.myOrders;
    expect(all.edges.map((edge: any) => edge.node.id)).toEqual(expected);
    const bobs = (await run(bob, MY_ORDERS, {})).data!.myOrders;
    expect(bobs.edges).toHaveLength(1);
    expect(bobs.edges[0].node.id).not.toBe(expected[0]);

    expect(errorCodes(await run(ada, MY_ORDERS, { first: 51 }))).toEqual(['BAD_USER_INPUT']);
    expect(errorCodes(await run(ada, MY_ORDERS, { first: 0 }))).toEqual(['BAD_USER_INPUT']);
    expect(errorCodes(await run(ada, MY_ORDERS, { after: 'garbage' }))).toEqual(['BAD_USER_INPUT']);
    // Bob's cursor is no position in Ada's list.
    expect(errorCodes(await run(ada, MY_ORDERS, { after: bobs.edges[0].cursor }))).toEqual(['BAD_USER_INPUT']);
    expect(errorCodes(await run(anonymous, MY_ORDERS, {}))).toEqual(['UNAUTHENTICATED']);
  });

  it("shows a user's orders to the user and staff only", async () => {
    const query = `query ($reps: [_Any!]!) { _entities(representations: $reps) {
      ... on User { id orders(first: 50) { edges { node { id customer { id } } } } } } }`;
    const reps = [{ __typename: 'User', id: ADA }];
    const self = await run(ada, query, { reps });
    expect(self.errors).toBeUndefined();
    expect(self.data!._entities[0].orders.edges).toHaveLength(5);
    const asStaff = await run(staff, query, { reps });
    expect(asStaff.data!._entities[0].orders.edges.map((edge: any) => edge.node.customer.id)).toEqual(
      Array(5).fill(ADA),
    );
    expect(errorCodes(await run(bob, query, { reps }))).toEqual(['FORBIDDEN']);
    expect(errorCodes(await run(anonymous, query, { reps }))).toEqual(['FORBIDDEN']);
  });

  it("resolves any number of Order references with one database query, hiding others' orders", async () => {
    const ids = (await prisma.order.findMany({ where: { customerId: ADA }, select: { id: true } })).map((o) => o.id);
    const bobsId = (await prisma.order.findFirstOrThrow({ where: { customerId: BOB } })).id;
    expect(ids.length).toBeGreaterThanOrEqual(4);
    const query = `query ($reps: [_Any!]!) { _entities(representations: $reps) { ... on Order { id total { amount } } } }`;
    const reps = [...ids, bobsId].map((id) => ({ __typename: 'Order', id }));

    sqlQueries.length = 0;
    const result = await run(ada, query, { reps });
    expect(result.errors).toBeUndefined();
    expect(result.data!._entities.map((order: any) => order?.id ?? null)).toEqual([...ids, null]);
    expect(sqlQueries.filter((sql) => /FROM "public"\."orders"/.test(sql))).toHaveLength(1);
    expect(sqlQueries).toHaveLength(1);

    const asStaff = await run(staff, query, { reps });
    expect(asStaff.data!._entities.map((order: any) => order.id)).toEqual([...ids, bobsId]);
  });

  it('loads items, add-ons and history for a whole page without one query per order', async () => {
    const query = `{ myOrders(first: 50) { edges { node { id items { mealName addons { name } } statusHistory { to } } } } }`;
    sqlQueries.length = 0;
    const result = await run(ada, query);
    expect(result.errors).toBeUndefined();
    expect(result.data!.myOrders.edges).toHaveLength(5);
    expect(result.data!.myOrders.edges.every((edge: any) => edge.node.statusHistory.length === 1)).toBe(true);
    // The page, the lines, their add-ons, the history: four queries for five orders.
    expect(sqlQueries).toHaveLength(4);
  });

  it('fails fast with a clear message on a missing or bad variable', () => {
    expect(() => loadOrdersConfig({ ...testSecrets, ORDERS_DELIVERY_FEE_MINOR: '-1' })).toThrow(
      /ORDERS_DATABASE_URL: .*required[\s\S]*MEALS_SUBGRAPH_URL: .*required[\s\S]*ORDERS_DELIVERY_FEE_MINOR/,
    );
    expect(
      loadOrdersConfig({ ...testSecrets, ORDERS_DATABASE_URL: 'postgres://x', MEALS_SUBGRAPH_URL: 'http://m/graphql' }),
    ).toMatchObject({ ORDERS_PORT: 4003, HOST: '127.0.0.1', ORDERS_DELIVERY_FEE_MINOR: 299 });
  });
});

describe('order lifecycle', () => {
  const CHANGE = `mutation ($input: ChangeOrderStatusInput!) {
    changeOrderStatus(input: $input) { id status version statusHistory { from to actor reason } } }`;
  const CANCEL = `mutation ($input: CancelOrderInput!) { cancelOrder(input: $input) { id status version } }`;

  async function placed(caller: Caller = ada): Promise<{ id: string; version: number }> {
    const result = await placeFor(caller);
    expect(result.errors).toBeUndefined();
    return result.data!.placeOrder;
  }

  /** The outbox, as the relay will publish it, for one order. */
  async function eventsOf(orderId: string): Promise<DomainEvent[]> {
    const rows = await prisma.outboxEvent.findMany({ where: { aggregateId: orderId }, orderBy: { sequence: 'asc' } });
    return rows.map((row) => parseEvent(row.payload));
  }
  const statusEvents = async (orderId: string) =>
    (await eventsOf(orderId)).flatMap((event) =>
      event.type === 'order.status_changed' ? [[event.data.from, event.data.to, event.data.version]] : [],
    );

  const paymentSucceeded = (orderId: string, paymentId = randomUUID()) =>
    newEvent('payment.succeeded', paymentId, { paymentId, orderId, amount: eur(1099) });
  const paymentFailed = (orderId: string) => {
    const paymentId = randomUUID();
    return newEvent('payment.failed', paymentId, { paymentId, orderId, outcome: 'DECLINED', reason: 'declined' });
  };
  const paymentRefunded = (orderId: string) => {
    const paymentId = randomUUID();
    return newEvent('payment.refunded', paymentId, { paymentId, orderId, amount: eur(1099) });
  };

  async function paid(): Promise<string> {
    const order = await placed();
    expect(await orders.handlePaymentEvent(paymentSucceeded(order.id))).toBe('applied');
    return order.id;
  }
  const change = (caller: Caller, orderId: string, status: string, extra: Record<string, unknown> = {}) =>
    run(caller, CHANGE, { input: { orderId, status, ...extra } });

  it('writes an order.placed event with the order, in the same transaction', async () => {
    const order = await placed();
    const [event] = await eventsOf(order.id);
    expect(event).toMatchObject({
      type: 'order.placed',
      version: 1,
      aggregateId: order.id,
      data: { orderId: order.id, customerId: ADA, status: 'PENDING_PAYMENT' },
    });
  });

  it('takes an order from payment to delivery, recording every change with its actor and event', async () => {
    const orderId = await paid();
    for (const status of ['ACCEPTED', 'PREPARING', 'READY', 'OUT_FOR_DELIVERY', 'DELIVERED']) {
      const result = await change(staff, orderId, status);
      expect(result.errors).toBeUndefined();
      expect(result.data!.changeOrderStatus.status).toBe(status);
    }
    const { data } = await run(
      staff,
      `query ($id: ID!) { order(id: $id) { version statusHistory { from to actor } } }`,
      {
        id: orderId,
      },
    );
    expect(data!.order.version).toBe(7);
    expect(data!.order.statusHistory.map((c: any) => [c.from, c.to, c.actor])).toEqual([
      [null, 'PENDING_PAYMENT', 'CUSTOMER'],
      ['PENDING_PAYMENT', 'PAID', 'SYSTEM'],
      ['PAID', 'ACCEPTED', 'STAFF'],
      ['ACCEPTED', 'PREPARING', 'STAFF'],
      ['PREPARING', 'READY', 'STAFF'],
      ['READY', 'OUT_FOR_DELIVERY', 'STAFF'],
      ['OUT_FOR_DELIVERY', 'DELIVERED', 'STAFF'],
    ]);
    expect(await statusEvents(orderId)).toEqual([
      ['PENDING_PAYMENT', 'PAID', 2],
      ['PAID', 'ACCEPTED', 3],
      ['ACCEPTED', 'PREPARING', 4],
      ['PREPARING', 'READY', 5],
      ['READY', 'OUT_FOR_DELIVERY', 6],
      ['OUT_FOR_DELIVERY', 'DELIVERED', 7],
    ]);
    const last = (await eventsOf(orderId)).at(-1)!;
    expect(last.type === 'order.status_changed' && last.data.final).toBe(true);
  });

  it('refuses an illegal transition with a typed error naming both statuses, and writes nothing', async () => {
    const order = await placed();
    const before = await tableCounts();
    const result = await change(staff, order.id, 'DELIVERED');
    expect(errorCodes(result)).toEqual(['INVALID_STATUS_TRANSITION']);
    expect(result.errors![0]!.message).toContain('PENDING_PAYMENT');
    expect(result.errors![0]!.message).toContain('DELIVERED');
    expect(result.errors![0]!.extensions).toMatchObject({
      currentStatus: 'PENDING_PAYMENT',
      requestedStatus: 'DELIVERED',
    });
    expect(await tableCounts()).toEqual(before);
  });

  it('lets only staff move the kitchen flow, and no one mark an order paid by hand', async () => {
    const orderId = await paid();
    expect(errorCodes(await change(ada, orderId, 'ACCEPTED'))).toEqual(['FORBIDDEN']);
    expect(errorCodes(await change(anonymous, orderId, 'ACCEPTED'))).toEqual(['UNAUTHENTICATED']);
    const unpaid = await placed();
    expect(errorCodes(await change(staff, unpaid.id, 'PAID'))).toEqual(['FORBIDDEN']);
  });

  it('refuses a change at a stale expected version with CONFLICT, and writes nothing', async () => {
    const orderId = await paid();
    const before = await tableCounts();
    const result = await change(staff, orderId, 'ACCEPTED', { expectedVersion: 1 });
    expect(errorCodes(result)).toEqual(['CONFLICT']);
    expect(await tableCounts()).toEqual(before);
    expect(errorCodes(await change(staff, orderId, 'ACCEPTED', { expectedVersion: 2 }))).toEqual([]);
  });

  it('lets exactly one of simultaneous changes from one version win; the others get CONFLICT', async () => {
    const orderId = await paid();
    const input = { orderId, expectedVersion: 2 };
    const results = await Promise.all([
      ...Array.from({ length: 5 }, () => change(staff, orderId, 'ACCEPTED', { expectedVersion: 2 })),
      ...Array.from({ length: 5 }, () => run(staff, CANCEL, { input })),
    ]);
    const codes = results.map((result) => String(errorCodes(result)[0] ?? 'OK'));
    expect(codes.filter((code) => code === 'OK')).toHaveLength(1);
    expect(codes.filter((code) => code === 'CONFLICT')).toHaveLength(9);
    expect(await statusEvents(orderId)).toHaveLength(2);
    expect(await prisma.orderStatusChange.count({ where: { orderId } })).toBe(3);
  });

  it('applies the same change once when it is sent many times at once', async () => {
    const orderId = await paid();
    const results = await Promise.all(Array.from({ length: 8 }, () => change(staff, orderId, 'ACCEPTED')));
    const codes = results.map((result) => String(errorCodes(result)[0] ?? 'OK'));
    expect(codes.filter((code) => code === 'OK')).toHaveLength(1);
    // The rest lost the race (CONFLICT) or read the winner's ACCEPTED first (no ACCEPTED -> ACCEPTED move).
    expect(codes.every((code) => ['OK', 'CONFLICT', 'INVALID_STATUS_TRANSITION'].includes(code))).toBe(true);
    expect(await statusEvents(orderId)).toEqual([
      ['PENDING_PAYMENT', 'PAID', 2],
      ['PAID', 'ACCEPTED', 3],
    ]);
  });

  it('cancels an unpaid order for its customer, and refuses another customer as if it did not exist', async () => {
    const order = await placed();
    expect(errorCodes(await run(bob, CANCEL, { input: { orderId: order.id } }))).toEqual(['NOT_FOUND']);
    const result = await run(ada, CANCEL, { input: { orderId: order.id, reason: 'changed my mind' } });
    expect(result.data!.cancelOrder.status).toBe('CANCELLED');
    expect(await statusEvents(order.id)).toEqual([['PENDING_PAYMENT', 'CANCELLED', 2]]);
    expect(errorCodes(await run(ada, CANCEL, { input: { orderId: order.id } }))).toEqual(['INVALID_STATUS_TRANSITION']);
  });

  it('cancels a paid order into REFUND_PENDING with a refund request, then REFUNDED when payments says so', async () => {
    const orderId = await paid();
    const result = await run(ada, CANCEL, { input: { orderId } });
    expect(result.data!.cancelOrder.status).toBe('REFUND_PENDING');
    const refundRequest = (await eventsOf(orderId)).find((event) => event.type === 'order.refund_requested');
    expect(refundRequest?.data).toEqual({ orderId, paymentId: null, reason: 'the order was cancelled after payment' });

    expect(await orders.handlePaymentEvent(paymentRefunded(orderId))).toBe('applied');
    const [order] = await orders.byIds(staff, [orderId]);
    expect(order!.status).toBe('REFUNDED');
  });

  it('lets a customer cancel only before the kitchen accepts', async () => {
    const orderId = await paid();
    await change(staff, orderId, 'ACCEPTED');
    expect(errorCodes(await run(ada, CANCEL, { input: { orderId } }))).toEqual(['FORBIDDEN']);
    expect((await run(staff, CANCEL, { input: { orderId } })).data!.cancelOrder.status).toBe('REFUND_PENDING');
  });

  it('handles a redelivered payment event once', async () => {
    const order = await placed();
    const event = paymentSucceeded(order.id);
    expect(await orders.handlePaymentEvent(event)).toBe('applied');
    const before = await tableCounts();
    expect(await orders.handlePaymentEvent(event)).toBe('duplicate');
    expect(await Promise.all([1, 2, 3].map(() => orders.handlePaymentEvent(event)))).toEqual([
      'duplicate',
      'duplicate',
      'duplicate',
    ]);
    expect(await tableCounts()).toEqual(before);
  });

  it('moves a declined order to PAYMENT_FAILED, and to PAID when a later payment succeeds', async () => {
    const order = await placed();
    await orders.handlePaymentEvent(paymentFailed(order.id));
    await orders.handlePaymentEvent(paymentSucceeded(order.id));
    expect(await statusEvents(order.id)).toEqual([
      ['PENDING_PAYMENT', 'PAYMENT_FAILED', 2],
      ['PAYMENT_FAILED', 'PAID', 3],
    ]);
  });

  it('sends back a payment that succeeds after the order was cancelled, leaving the order cancelled', async () => {
    const order = await placed();
    await run(ada, CANCEL, { input: { orderId: order.id } });
    const late = paymentSucceeded(order.id);
    expect(await orders.handlePaymentEvent(late)).toBe('ignored');
    const refund = (await eventsOf(order.id)).find((event) => event.type === 'order.refund_requested');
    expect(refund?.data).toMatchObject({ orderId: order.id, paymentId: late.data.paymentId });
    const [stored] = await orders.byIds(staff, [order.id]);
    expect(stored!.status).toBe('CANCELLED');
    expect(await orders.handlePaymentEvent(late)).toBe('duplicate');
  });

  it('cancels orders left unpaid past the timeout, and only those', async () => {
    const stale = await placed();
    const failed = await placed();
    await orders.handlePaymentEvent(paymentFailed(failed.id));
    const paidId = await paid();
    const old = new Date(Date.now() - 60 * 60_000);
    await prisma.order.updateMany({ where: { id: { in: [stale.id, failed.id, paidId] } }, data: { createdAt: old } });
    const fresh = await placed();

    await orders.cancelUnpaidOrders(new Date(Date.now() - 30 * 60_000), 1000);
    const byId = new Map((await orders.byIds(staff, [stale.id, failed.id, paidId, fresh.id])).map((o) => [o!.id, o!]));
    expect(byId.get(stale.id)!.status).toBe('CANCELLED');
    expect(byId.get(failed.id)!.status).toBe('CANCELLED');
    expect(byId.get(paidId)!.status).toBe('PAID');
    expect(byId.get(fresh.id)!.status).toBe('PENDING_PAYMENT');
    const [history] = await orders.historyOf([stale.id]);
    expect(history!.at(-1)).toMatchObject({ to: 'CANCELLED', actor: 'SYSTEM', reason: 'not paid in time' });
  });
});

describe('placing an order once per idempotency key', () => {
  // Customers of their own, so the other tests' counts of Ada's and Bob's orders stay as they are.
  const customer = (): Caller => ({ kind: 'user', userId: randomUUID(), role: 'CUSTOMER' });
  const PIZZA_WITH_ADDONS = [{ mealId: PIZZA, quantity: 2, addons: [{ addonId: CHEESE, quantity: 1 }] }];
  const ordersOf = (caller: Caller) =>
    prisma.order.count({ where: { customerId: caller.kind === 'user' ? caller.userId : '' } });

  it('answers a repeat with the same order: no second order, event or meals call', async () => {
    const grace = customer();
    const key = newKey();
    const first = await placeFor(grace, PIZZA_WITH_ADDONS, key);
    expect(first.errors).toBeUndefined();
    const before = await tableCounts();
    meals.calls = [];
    // The same request, as a retry would send it: the same key, lines and address (spaces aside).
    const again = await placeFor(grace, PIZZA_WITH_ADDONS, key, '  1 Baker Street, London ');
    expect(again.errors).toBeUndefined();
    expect(again.data!.placeOrder).toEqual(first.data!.placeOrder);
    expect(meals.calls).toEqual([]);
    expect(await tableCounts()).toEqual(before);
    expect(await ordersOf(grace)).toBe(1);
    expect(await prisma.outboxEvent.count({ where: { aggregateId: first.data!.placeOrder.id } })).toBe(1);
  });

  it('answers a repeat after the order moved on with the order as it is now', async () => {
    const grace = customer();
    const key = newKey();
    const placed = (await placeFor(grace, undefined, key)).data!.placeOrder;
    await run(grace, `mutation ($input: CancelOrderInput!) { cancelOrder(input: $input) { id } }`, {
      input: { orderId: placed.id },
    });
    const again = await placeFor(grace, undefined, key);
    expect(again.data!.placeOrder).toMatchObject({ id: placed.id, status: 'CANCELLED', version: 2 });
  });

  it.each([
    ['other items', [{ mealId: PIZZA, quantity: 3, addons: [{ addonId: CHEESE, quantity: 1 }] }], undefined],
    [
      'another add-on quantity',
      [{ mealId: PIZZA, quantity: 2, addons: [{ addonId: CHEESE, quantity: 2 }] }],
      undefined,
    ],
    ['another address', PIZZA_WITH_ADDONS, '2 Baker Street, London'],
  ])('refuses the key with %s: IDEMPOTENCY_KEY_REUSED, and writes nothing', async (_label, items, address) => {
    const grace = customer();
    const key = newKey();
    expect((await placeFor(grace, PIZZA_WITH_ADDONS, key)).errors).toBeUndefined();
    const before = await tableCounts();
    const reused = await placeFor(grace, items, key, address);
    expect(errorCodes(reused)).toEqual(['IDEMPOTENCY_KEY_REUSED']);
    expect(reused.errors![0]!.extensions).toMatchObject({ field: 'idempotencyKey' });
    expect(reused.data?.placeOrder ?? null).toBeNull();
    expect(await tableCounts()).toEqual(before);
  });

  it('keeps keys per customer: two customers place an order each with the same key', async () => {
    const [grace, linus] = [customer(), customer()];
    const key = newKey();
    const graces = await placeFor(grace, PIZZA_WITH_ADDONS, key);
    // Even another request: Linus's key is his own.
    const linuss = await placeFor(linus, [{ mealId: SALAD, quantity: 1 }], key);
    expect(graces.errors).toBeUndefined();
    expect(linuss.errors).toBeUndefined();
    expect(linuss.data!.placeOrder.id).not.toBe(graces.data!.placeOrder.id);
    expect(linuss.data!.placeOrder.customer).toEqual({ id: (linus as { userId: string }).userId });
    expect([await ordersOf(grace), await ordersOf(linus)]).toEqual([1, 1]);
  });

  it('makes exactly one order of ten identical calls at once, and answers all ten with it', async () => {
    const grace = customer();
    const key = newKey();
    const before = await tableCounts();
    const results = await Promise.all(Array.from({ length: 10 }, () => placeFor(grace, PIZZA_WITH_ADDONS, key)));
    expect(results.map((result) => errorCodes(result))).toEqual(Array(10).fill([]));
    const ids = new Set(results.map((result) => result.data!.placeOrder.id));
    expect(ids.size).toBe(1);
    const [orderId] = [...ids];
    expect(await ordersOf(grace)).toBe(1);
    expect(await tableCounts()).toEqual({
      orders: before.orders + 1,
      items: before.items + 1,
      addons: before.addons + 1,
      changes: before.changes + 1,
      outbox: before.outbox + 1,
      keys: before.keys + 1,
    });
    expect(await prisma.outboxEvent.count({ where: { aggregateId: orderId } })).toBe(1);
    // Every caller got the whole order, not a partial one.
    expect(new Set(results.map((result) => JSON.stringify(result.data!.placeOrder))).size).toBe(1);
  });

  it('refuses ten calls at once with one key and two requests: one request wins, the others of it get its order', async () => {
    const grace = customer();
    const key = newKey();
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        placeFor(grace, [{ mealId: i % 2 === 0 ? PIZZA : SALAD, quantity: 1 }], key),
      ),
    );
    const [order] = await prisma.order.findMany({ where: { customerId: (grace as { userId: string }).userId } });
    expect(await ordersOf(grace)).toBe(1);
    const won = results.filter((result) => result.errors === undefined);
    expect(won.length).toBe(5);
    expect(new Set(won.map((result) => result.data!.placeOrder.id))).toEqual(new Set([order!.id]));
    expect(results.filter((result) => errorCodes(result)[0] === 'IDEMPOTENCY_KEY_REUSED')).toHaveLength(5);
  });

  it.each([
    ['a key shorter than 8 characters', 'short'],
    ['a key with a space', 'bad key!!'],
    ['a key over 100 characters', 'k'.repeat(101)],
  ])('refuses %s (the rule of payForOrder), and writes nothing', async (_label, key) => {
    const before = await tableCounts();
    const result = await placeFor(customer(), undefined, key);
    expect(errorCodes(result)).toEqual(['BAD_USER_INPUT']);
    expect(result.errors![0]!.extensions).toMatchObject({ field: 'idempotencyKey' });
    expect(meals.calls).toEqual([]);
    expect(await tableCounts()).toEqual(before);
  });

  it('requires a key', async () => {
    const result = await run(customer(), PLACE_ORDER, {
      input: { items: [{ mealId: SALAD, quantity: 1 }], deliveryAddress: '1 Baker Street, London' },
    });
    expect(errorCodes(result)).toEqual(['BAD_USER_INPUT']);
    expect(result.errors![0]!.message).toMatch(/idempotencyKey/);
  });

  it('forgets keys past their retention, after which the key places a new order', async () => {
    const grace = customer();
    const key = newKey();
    const first = (await placeFor(grace, undefined, key)).data!.placeOrder;
    const recent = newKey();
    await placeFor(grace, undefined, recent);
    await prisma.orderIdempotencyKey.updateMany({
      where: { key },
      data: { createdAt: new Date(Date.now() - 25 * 3_600_000) },
    });
    const forgotten = await orders.forgetIdempotencyKeys(new Date(Date.now() - 24 * 3_600_000), 1);
    expect(forgotten).toBeGreaterThanOrEqual(1);
    expect(await prisma.orderIdempotencyKey.count({ where: { key } })).toBe(0);
    expect(await prisma.orderIdempotencyKey.count({ where: { key: recent } })).toBe(1);
    const second = await placeFor(grace, undefined, key);
    expect(second.errors).toBeUndefined();
    expect(second.data!.placeOrder.id).not.toBe(first.id);
    // The order itself is kept: only the key is forgotten.
    expect(await ordersOf(grace)).toBe(3);
  });
});

describe("the kitchen's queue", () => {
  const QUEUE = `query ($statuses: [OrderStatus!]!, $first: Int, $after: String) {
    kitchenQueue(statuses: $statuses, first: $first, after: $after) {
      edges { cursor node { id status createdAt } } pageInfo { hasNextPage endCursor } counts { status count } } }`;
  const queue = (caller: Caller, variables: Record<string, unknown>) => run(caller, QUEUE, variables);
  const cook: Caller = { kind: 'user', userId: randomUUID(), role: 'CUSTOMER' };

  /** Every page of the queue, `first` at a time. */
  async function readAll(statuses: string[], first: number): Promise<{ ids: string[]; pages: number }> {
    const ids: string[] = [];
    let after: string | null = null;
    let pages = 0;
    for (;;) {
      const result = await queue(staff, { statuses, first, after });
      expect(result.errors).toBeUndefined();
      const page = result.data!.kitchenQueue;
      pages++;
      expect(page.edges.length).toBeLessThanOrEqual(first);
      ids.push(...page.edges.map((edge: any) => edge.node.id));
      if (!page.pageInfo.hasNextPage) return { ids, pages };
      after = page.pageInfo.endCursor;
    }
  }

  /** The queue as the database has it: each status's orders oldest first, in the order asked. */
  async function expectedQueue(statuses: Order['status'][]): Promise<string[]> {
    const ids: string[] = [];
    for (const status of statuses) {
      const rows = await prisma.order.findMany({
        where: { status },
        orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
        select: { id: true },
      });
      ids.push(...rows.map((row) => row.id));
    }
    return ids;
  }

  /** Orders of this block's customer in the given statuses, placed at the given times (test set-up). */
  async function ordersAt(rows: [Order['status'], string][]): Promise<string[]> {
    const ids: string[] = [];
    for (const [status, at] of rows) {
      const placed = await placeFor(cook);
      expect(placed.errors).toBeUndefined();
      const id = placed.data!.placeOrder.id as string;
      await prisma.order.update({ where: { id }, data: { status, createdAt: new Date(at) } });
      ids.push(id);
    }
    return ids;
  }

  // Placed in 2000, before any other test's orders: they lead their statuses' queues.
  let fixture: Record<string, string> = {};
  beforeAll(async () => {
    const [readyLate, paidFirst, readyEarly, paidTieA, paidTieB, accepted] = await ordersAt([
      ['READY', '2000-01-01T10:05:00.000Z'],
      ['PAID', '2000-01-01T10:00:00.000Z'],
      ['READY', '2000-01-01T10:01:00.000Z'],
      ['PAID', '2000-01-01T10:02:00.000Z'],
      ['PAID', '2000-01-01T10:02:00.000Z'],
      ['ACCEPTED', '2000-01-01T09:00:00.000Z'],
    ]);
    const [tieFirst, tieSecond] = [paidTieA!, paidTieB!].sort();
    fixture = {
      readyLate: readyLate!,
      paidFirst: paidFirst!,
      readyEarly: readyEarly!,
      tieFirst: tieFirst!,
      tieSecond: tieSecond!,
      accepted: accepted!,
    };
  });

  it('lists the statuses in the order asked, each oldest first (ties by id), across pages', async () => {
    const statuses = ['READY', 'PAID', 'ACCEPTED'] as const;
    const expected = await expectedQueue([...statuses]);
    expect(expected.length).toBeGreaterThan(6);
    const { ids, pages } = await readAll([...statuses], 2);
    expect(ids).toEqual(expected);
    expect(pages).toBe(Math.ceil(expected.length / 2));
    // This block's orders, placed first in their statuses, in the order the kitchen works them.
    const mine = new Set(Object.values(fixture));
    expect(ids.filter((id) => mine.has(id))).toEqual([
      fixture.readyEarly,
      fixture.readyLate,
      fixture.paidFirst,
      fixture.tieFirst,
      fixture.tieSecond,
      fixture.accepted,
    ]);
    const first = (await queue(staff, { statuses, first: 3 })).data!.kitchenQueue;
    expect(first.edges.map((edge: any) => edge.node.id)).toEqual(expected.slice(0, 3));
    expect(first.edges.slice(0, 2).map((edge: any) => [edge.node.id, edge.node.status])).toEqual([
      [fixture.readyEarly, 'READY'],
      [fixture.readyLate, 'READY'],
    ]);
    // Another order of the statuses gives another queue: PAID first now.
    const { ids: paidFirst } = await readAll(['PAID', 'READY'], 50);
    expect(paidFirst).toEqual(await expectedQueue(['PAID', 'READY']));
    expect(paidFirst.slice(0, 3)).toEqual([fixture.paidFirst, fixture.tieFirst, fixture.tieSecond]);
  });

  it('counts each status asked for, in the order asked, over the whole queue', async () => {
    const statuses = ['PAID', 'READY', 'OUT_FOR_DELIVERY', 'ACCEPTED'] as const;
    const counted = async () => {
      const result = await queue(staff, { statuses, first: 1 });
      expect(result.errors).toBeUndefined();
      return result.data!.kitchenQueue.counts as { status: string; count: number }[];
    };
    const counts = await counted();
    expect(counts).toEqual(
      await Promise.all(
        statuses.map(async (status) => ({ status, count: await prisma.order.count({ where: { status } }) })),
      ),
    );
    expect(counts[0]!.count).toBeGreaterThanOrEqual(3);
    const [paid] = await ordersAt([['PAID', '2000-01-02T00:00:00.000Z']]);
    await ordersAt([['DELIVERED', '2000-01-02T00:00:00.000Z']]);
    const after = await counted();
    expect(after.map((c) => c.count)).toEqual([counts[0]!.count + 1, ...counts.slice(1).map((c) => c.count)]);
    await prisma.order.update({ where: { id: paid! }, data: { status: 'DELIVERED' } });
    expect(await counted()).toEqual(counts);
  });

  it('keeps its place when the last order of a page moves on before the next page', async () => {
    const statuses = ['PAID', 'ACCEPTED'];
    const before = await expectedQueue(['PAID', 'ACCEPTED']);
    const page1 = (await queue(staff, { statuses, first: 2 })).data!.kitchenQueue;
    expect(page1.edges.map((edge: any) => edge.node.id)).toEqual(before.slice(0, 2));
    // The kitchen accepts the order the page ended on: the next page goes on after it in PAID.
    await prisma.order.update({ where: { id: before[1]! }, data: { status: 'ACCEPTED' } });
    const page2 = (await queue(staff, { statuses, first: 2, after: page1.pageInfo.endCursor })).data!.kitchenQueue;
    expect(page2.edges.map((edge: any) => edge.node.id)).toEqual(before.slice(2, 4));
    await prisma.order.update({ where: { id: before[1]! }, data: { status: 'PAID' } });
  });

  it('is for staff only: customers get FORBIDDEN, anonymous callers UNAUTHENTICATED', async () => {
    expect(errorCodes(await queue(ada, { statuses: ['PAID'] }))).toEqual(['FORBIDDEN']);
    expect(errorCodes(await queue(anonymous, { statuses: ['PAID'] }))).toEqual(['UNAUTHENTICATED']);
    const asAdmin = await queue({ kind: 'user', userId: randomUUID(), role: 'ADMIN' }, { statuses: ['PAID'] });
    expect(asAdmin.errors).toBeUndefined();
  });

  it.each([
    ['no status', { statuses: [] }, 'statuses'],
    ['a final status', { statuses: ['PAID', 'DELIVERED'] }, 'statuses.1'],
    ['a status twice', { statuses: ['PAID', 'READY', 'PAID'] }, 'statuses.2'],
    ['first over 50', { statuses: ['PAID'], first: 51 }, undefined],
    ['first of 0', { statuses: ['PAID'], first: 0 }, undefined],
    ['a made-up cursor', { statuses: ['PAID'], after: 'garbage' }, undefined],
  ])('refuses %s with BAD_USER_INPUT', async (_label, variables, field) => {
    const result = await queue(staff, variables);
    expect(errorCodes(result)).toEqual(['BAD_USER_INPUT']);
    if (field) expect(result.errors![0]!.extensions).toMatchObject({ field });
  });

  it("refuses a cursor of a queue of other statuses, and myOrders' cursors", async () => {
    const ready = (await queue(staff, { statuses: ['READY'], first: 1 })).data!.kitchenQueue;
    expect(errorCodes(await queue(staff, { statuses: ['PAID'], after: ready.pageInfo.endCursor }))).toEqual([
      'BAD_USER_INPUT',
    ]);
    const mine = (await run(ada, MY_ORDERS, { first: 1 })).data!.myOrders;
    expect(errorCodes(await queue(staff, { statuses: ['PAID'], after: mine.pageInfo.endCursor }))).toEqual([
      'BAD_USER_INPUT',
    ]);
  });
});

describe("the kitchen's queue beside a large history", () => {
  /** Postgres's plan of one statement, run: the scans it used and the buffers it touched. */
  async function planOf(sql: string, params: unknown[]) {
    const [row] = await prisma.$queryRawUnsafe<{ 'QUERY PLAN': [{ Plan: Record<string, any> }] }[]>(
      `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${sql}`,
      ...params,
    );
    const nodes: Record<string, any>[] = [];
    const walk = (node: Record<string, any>) => {
      nodes.push(node);
      for (const child of node.Plans ?? []) walk(child);
    };
    const plan = row!['QUERY PLAN'][0].Plan;
    walk(plan);
    return {
      scans: nodes.map((node) => node['Node Type'] as string),
      buffers: plan['Shared Hit Blocks'] + plan['Shared Read Blocks'],
    };
  }

  it('reads a page and the counts from the status index, not the delivered orders', async () => {
    // 100,000 delivered orders (the history), spread over the partitions like old ids are.
    await prisma.$executeRawUnsafe(`
      INSERT INTO orders (id, customer_id, status, currency, subtotal_amount, delivery_fee_amount, total_amount,
        delivery_address, created_at, updated_at)
      SELECT gen_random_uuid(), gen_random_uuid(), 'DELIVERED', 'EUR', 100, 0, 100, 'Delivered Street 1',
        now() - (g || ' seconds')::interval, now() FROM generate_series(1, 100000) g`);
    await prisma.$executeRawUnsafe('VACUUM ANALYZE orders');
    // The statements' shapes as Prisma sends them (statuses as text cast to the enum).
    const status = (n: number) => `CAST($${n}::text AS "public"."OrderStatus")`;
    const page = await planOf(
      `SELECT "id" FROM "public"."orders" WHERE "status" = ${status(1)} AND "created_at" >= $2 ORDER BY "created_at" ASC, "id" ASC LIMIT $3`,
      ['PAID', new Date(0), 21],
    );
    const counts = await planOf(
      `SELECT "status", COUNT(*) FROM "public"."orders" WHERE "status" IN (${status(1)}, ${status(2)}, ${status(3)}, ${status(4)}) GROUP BY "status"`,
      ['PAID', 'ACCEPTED', 'PREPARING', 'READY'],
    );
    for (const plan of [page, counts]) {
      expect(plan.scans).not.toContain('Seq Scan');
      expect(plan.scans.some((scan) => scan.startsWith('Index') || scan.startsWith('Bitmap Index'))).toBe(true);
      // A sequential scan of the history alone is over a thousand pages.
      expect(plan.buffers).toBeLessThan(200);
    }
    const result = await run(staff, `{ kitchenQueue(statuses: [PAID, READY]) { counts { status count } } }`);
    expect(result.data!.kitchenQueue.counts).toEqual([
      { status: 'PAID', count: await prisma.order.count({ where: { status: 'PAID' } }) },
      { status: 'READY', count: await prisma.order.count({ where: { status: 'READY' } }) },
    ]);
  });
});

describe('delivery address at rest', () => {
  const logger = createLogger('orders-test', 'silent');
  const rotated = () => new PersonalDataCipher(loadOrdersConfig(rotatedEnv()).ORDERS_ENCRYPTION_KEYS, 'k2');
  const rotatedEnv = () => ({
    ...testSecrets,
    ORDERS_DATABASE_URL: 'postgres://unused',
    MEALS_SUBGRAPH_URL: 'http://127.0.0.1:1/graphql',
    ORDERS_ENCRYPTION_KEYS: `k1:${key(1)},k2:${key(2)}`,
    ORDERS_ENCRYPTION_ACTIVE_KEY_ID: 'k2',
  });

  it('stores the address encrypted under the active key, and returns it to the customer', async () => {
    const placed = await run(ada, PLACE_ORDER, {
      input: {
        items: [{ mealId: SALAD, quantity: 1 }],
        deliveryAddress: '221B Baker Street, London',
        idempotencyKey: newKey(),
      },
    });
    expect(placed.errors).toBeUndefined();
    const id = placed.data!.placeOrder.id as string;
    const [row] = await prisma.$queryRaw<Record<string, string | null>[]>`
      SELECT delivery_address, delivery_address_encrypted, delivery_address_key_id FROM orders WHERE id = ${id}::uuid`;
    expect(row!.delivery_address).toBeNull();
    expect(row!.delivery_address_key_id).toBe('k1');
    expect(row!.delivery_address_encrypted).toMatch(/^k1:/);
    expect(row!.delivery_address_encrypted).not.toContain('Baker');
    expect((await run(ada, ORDER, { id })).data!.order.deliveryAddress).toBe('221B Baker Street, London');
    expect((await run(staff, ORDER, { id })).data!.order.deliveryAddress).toBe('221B Baker Street, London');
  });

  it('refuses an active key id that names no key', () => {
    expect(() => loadOrdersConfig({ ...rotatedEnv(), ORDERS_ENCRYPTION_ACTIVE_KEY_ID: 'k3' })).toThrow(
      /ORDERS_ENCRYPTION_ACTIVE_KEY_ID: must name a key in ORDERS_ENCRYPTION_KEYS/,
    );
    expect(() => loadOrdersConfig({ ...rotatedEnv(), ORDERS_ENCRYPTION_KEYS: 'k1:short' })).toThrow(
      /ORDERS_ENCRYPTION_KEYS: each entry must be keyId:base64 of exactly 32 bytes/,
    );
  });

  it('moves legacy plaintext addresses, then re-encrypts them under a new active key, in batches, on two workers at once', async () => {
    // A database as it was before the migration, with orders whose address is plaintext.
    const legacy = await createTestDatabaseAt('orders', '20261201000000_time_partitions');
    const ids = Array.from({ length: 5 }, () => newId());
    const other = new PrismaClient({ adapter: new PrismaPg({ connectionString: legacy.url, max: 2 }) });
    try {
      await withPostgres(legacy.url, async (client) => {
        for (const [n, id] of ids.entries()) {
          await client.query(
            `INSERT INTO orders (id, customer_id, status, currency, subtotal_amount, delivery_fee_amount, total_amount,
                                 delivery_address, updated_at)
             VALUES ($1, $2, 'PAID', 'EUR', 1000, 299, 1299, $3, now())`,
            [id, ADA, `${n} Legacy Lane`],
          );
        }
      });
      await legacy.migrateRest();
      const stored = (client: typeof other) =>
        client.$queryRaw<{ id: string; plain: string | null; sealed: string | null; key_id: string | null }[]>`
          SELECT id::text, delivery_address AS plain, delivery_address_encrypted AS sealed,
                 delivery_address_key_id AS key_id FROM orders ORDER BY id`;
      const store = new PrismaOrdersStore(other, rotated());
      const addresses = async () => (await store.findByIds(ids)).map((o) => o.deliveryAddress).sort();
      const expected = ids.map((_, n) => `${n} Legacy Lane`).sort();
      // Readable before the job ran: the store falls back to the plaintext.
      expect(await addresses()).toEqual(expected);

      // Two workers at once, batches of 2: every row is moved once, by one of them.
      const sweep = (active: PersonalDataCipher) => sweepOrdersPersonalData(other, active, { batchSize: 2 });
      const both = async (active: PersonalDataCipher) => {
        const [first, second] = await Promise.all([sweep(active), sweep(active)]);
        return { moved: first.moved + second.moved, resealed: first.resealed + second.resealed };
      };
      expect(await both(cipher)).toEqual({ moved: 5, resealed: 0 });
      for (const row of await stored(other)) {
        expect(row).toMatchObject({ plain: null, key_id: 'k1' });
        expect(row.sealed).toMatch(/^k1:/);
        expect(row.sealed).not.toContain('Legacy');
      }
      expect(await addresses()).toEqual(expected);

      // The active key changes to k2: the worker's job re-encrypts every row under it.
      await protectPersonalData({ prisma: other, cipher: rotated(), logger, batchSize: 2 })(
        {},
        { id: '1', attemptsMade: 0 },
      );
      for (const row of await stored(other)) {
        expect(row.key_id).toBe('k2');
        expect(row.sealed).toMatch(/^k2:/);
      }
      expect(await addresses()).toEqual(expected);
      // Nothing left: running again changes nothing.
      expect(await both(rotated())).toEqual({ moved: 0, resealed: 0 });
    } finally {
      await other.$disconnect();
      await legacy.drop();
    }
  });
});
