import { randomUUID } from 'node:crypto';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { newEvent, type DomainEvent, type EventBus, type EventOf } from '@food/platform';
import { forgedUserTokenSigner, testAccessToken, testUserTokenSigner } from '@food/platform/testing';
import type { RunningGateway } from '@food/gateway';
import { codes, startTestSupergraph } from './harness.js';
// These tests start their own gateways (with an in-test bus) beside the supergraph's, on the same subgraphs.
import { EmitterBus, startGatewayOnBus } from './in-test-bus.js';
import { record, statusesOf, webSocketUrl, WHOLE_JOURNEY } from './tracking-clients.js';

/**
 * GraphQL subscriptions through the gateway over WebSockets (graphql-ws), on the real subgraphs.
 * Order changes are published to an in-test event bus, so each case controls exactly what happens;
 * the last cases run the real chain instead (mutations, outbox, relay, Redis): an order's tracking
 * and the menu's live availability.
 */

type Status = EventOf<'order.status_changed'>['data']['to'];

let t: Awaited<ReturnType<typeof startTestSupergraph>>;
let bus: EmitterBus;
let gateway: RunningGateway;
let wsUrl = '';
const tokens: Record<'ada' | 'grace' | 'chef', string> = { ada: '', grace: '', chef: '' };
const userIds: Record<'ada' | 'grace' | 'chef', string> = { ada: '', grace: '', chef: '' };
let mealId = '';
const clients: Client[] = [];
const extraGateways: RunningGateway[] = [];

const LOG_IN = `mutation ($input: LogInInput!) { logIn(input: $input) { token user { id } } }`;
const PLACE = `mutation ($input: PlaceOrderInput!) { placeOrder(input: $input) { id status version } }`;
const TRACK = `subscription Track($id: ID!) {
  orderStatusChanged(orderId: $id) {
    id status version customer { name } items { quantity meal { name } } payment { status }
  }
}`;
const FEED = `subscription { orderUpdates { id state: status version customer { name } } }`;
const MAX_PER_CONNECTION = 3;

const startSubscriptionGateway = (eventBus: EventBus | undefined, env: Record<string, string> = {}) =>
  startGatewayOnBus(t.supergraph.subgraphUrls, eventBus, env);

function connect(token?: string, url = wsUrl, closed?: (event: unknown) => void): Client {
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
    on: closed ? { closed } : {},
  });
  clients.push(client);
  return client;
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function placeOrder(token = tokens.ada): Promise<string> {
  const placed = await t.gateway(
    PLACE,
    {
      input: {
        deliveryAddress: '1 Subscription Street',
        items: [{ mealId, quantity: 2 }],
        idempotencyKey: `order-${randomUUID()}`,
      },
    },
    bearer(token),
  );
  expect(placed.errors).toBeUndefined();
  return placed.data.placeOrder.id as string;
}

function statusChanged(orderId: string, from: Status, to: Status, version: number, final = false) {
  return newEvent('order.status_changed', orderId, {
    orderId,
    customerId: userIds.ada,
    from,
    to,
    version,
    final,
    actor: { kind: 'user', id: userIds.chef },
    reason: null,
  });
}

async function publish(...events: DomainEvent[]) {
  for (const event of events) await bus.publish('orders', event);
}

async function settled() {
  await vi.waitFor(() => {
    expect(gateway.subscriptions.activeSubscriptions()).toBe(0);
    expect(gateway.subscriptions.listenerCounts()).toMatchObject({ indexedListeners: 0, typeListeners: 0 });
    expect(gateway.subscriptions.topics()).toBe(0);
  });
}

beforeAll(async () => {
  t = await startTestSupergraph();
  for (const [name, password] of [
    ['ada', 'ada-demo-password'],
    ['grace', 'grace-demo-password'],
    ['chef', 'chef-demo-password'],
  ] as const) {
    const response = await t.gateway(LOG_IN, { input: { email: `${name}@example.com`, password } });
    tokens[name] = response.data.logIn.token;
    userIds[name] = response.data.logIn.user.id;
  }
  const menu = await t.gateway(`{ meals(first: 1, filter: { available: true }) { edges { node { id } } } }`);
  mealId = menu.data.meals.edges[0].node.id;
  bus = new EmitterBus();
  gateway = await startSubscriptionGateway(bus, {
    GATEWAY_MAX_SUBSCRIPTIONS_PER_CONNECTION: String(MAX_PER_CONNECTION),
  });
  wsUrl = webSocketUrl(gateway.url);
}, 120_000);

afterAll(async () => {
  await Promise.all(clients.map((client) => client.dispose()));
  for (const running of [gateway, ...extraGateways]) await running?.close();
  await t?.stop();
});

describe('order tracking over WebSockets (graphql-ws) on the gateway', () => {
  it('sends the current order, then each change once and in order with its status, then completes', async () => {
    const orderId = await placeOrder();
    const tracking = record(connect(tokens.ada), TRACK, { id: orderId });
    const [snapshot] = await tracking.received(1);
    expect(snapshot).toEqual({
      data: {
        orderStatusChanged: {
          id: orderId,
          status: 'PENDING_PAYMENT',
          version: 1,
          customer: { name: 'Ada Lovelace' },
          items: [{ quantity: 2, meal: { name: expect.any(String) } }],
          payment: null,
        },
      },
    });
    expect(gateway.subscriptions.listenerCounts()).toMatchObject({ indexedListeners: 1, tails: 1 });

    await publish(
      statusChanged(orderId, 'PENDING_PAYMENT', 'PAID', 2),
      statusChanged(orderId, 'PENDING_PAYMENT', 'PAID', 2), // repeated
      statusChanged(orderId, 'PAID', 'ACCEPTED', 3),
      statusChanged(orderId, 'PENDING_PAYMENT', 'PAID', 2), // stale
      statusChanged(orderId, 'ACCEPTED', 'PREPARING', 4),
      statusChanged(orderId, 'PREPARING', 'READY', 5),
      statusChanged(orderId, 'READY', 'OUT_FOR_DELIVERY', 6),
      statusChanged(orderId, 'OUT_FOR_DELIVERY', 'DELIVERED', 7, true),
      statusChanged(orderId, 'OUT_FOR_DELIVERY', 'DELIVERED', 7, true), // after the end
    );
    await tracking.ended();
    expect(tracking.state).toEqual({ completed: true });
    expect(statusesOf(tracking.results)).toEqual(WHOLE_JOURNEY);
    // Every message is a federated Order resolved when it was sent.
    for (const result of tracking.results) {
      expect(result.data.orderStatusChanged).toMatchObject({ id: orderId, customer: { name: 'Ada Lovelace' } });
      expect(result.data.orderStatusChanged.items[0].meal.name).toEqual(expect.any(String));
    }
    await settled();
  });

  it('completes right after the current state when the order is already final', async () => {
    const orderId = await placeOrder();
    const cancelled = await t.gateway(
      `mutation ($input: CancelOrderInput!) { cancelOrder(input: $input) { status } }`,
      { input: { orderId } },
      bearer(tokens.ada),
    );
    expect(cancelled.data.cancelOrder.status).toBe('CANCELLED');
    const tracking = record(connect(tokens.ada), TRACK, { id: orderId });
    await tracking.ended();
    expect(tracking.state).toEqual({ completed: true });
    expect(statusesOf(tracking.results)).toEqual(['CANCELLED/2']);
    await settled();
  });

  it('keeps aliases and fragments, with the change status at each of them', async () => {
    const orderId = await placeOrder();
    const tracking = record(
      connect(tokens.ada),
      `subscription ($id: ID!) {
        mine: orderStatusChanged(orderId: $id) { state: status ...Fields ... on Order { again: version } }
      }
      fragment Fields on Order { status version total { currency } }`,
      { id: orderId },
    );
    await tracking.received(1);
    await publish(statusChanged(orderId, 'PENDING_PAYMENT', 'PAID', 2));
    const [snapshot, change] = await tracking.received(2);
    expect(snapshot.data.mine).toEqual({
      state: 'PENDING_PAYMENT',
      status: 'PENDING_PAYMENT',
      version: 1,
      again: 1,
      total: { currency: expect.any(String) },
    });
    expect(change.data.mine).toMatchObject({ state: 'PAID', status: 'PAID', version: 2, again: 2 });
    tracking.unsubscribe();
    await settled();
  });

  it('refuses an unknown field at subscribe time with the validation error', async () => {
    const tracking = record(
      connect(tokens.ada),
      `subscription { orderStatusChanged(orderId: "${randomUUID()}") { id nope } }`,
    );
    await tracking.ended();
    expect(tracking.results).toEqual([]);
    expect(tracking.state.error).toEqual([
      expect.objectContaining({
        message: 'Cannot query field "nope" on type "Order".',
        extensions: { code: 'GRAPHQL_VALIDATION_FAILED' },
      }),
    ]);
  });

  it("sends another customer's order to nobody: an error, no data", async () => {
    const orderId = await placeOrder(tokens.ada);
    const tracking = record(connect(tokens.grace), TRACK, { id: orderId });
    await tracking.ended();
    expect(tracking.results).toEqual([]);
    // The orders subgraph's own answer, as the same query over HTTP gets it.
    expect(tracking.state.error).toEqual([
      expect.objectContaining({
        message: `Order ${orderId} was not found`,
        extensions: expect.objectContaining({ code: 'NOT_FOUND' }),
      }),
    ]);
    await settled();
  });

  it('lets an anonymous connection in, but not subscribe to an order', async () => {
    const tracking = record(connect(), TRACK, { id: randomUUID() });
    await tracking.ended();
    expect(tracking.state.error).toEqual([
      expect.objectContaining({ extensions: expect.objectContaining({ code: 'UNAUTHENTICATED' }) }),
    ]);
  });

  it('refuses a forged, expired or malformed token at connect (4403)', async () => {
    const forged = await testAccessToken(userIds.chef, 'STAFF', { signer: forgedUserTokenSigner() });
    const expired = (
      await testUserTokenSigner({ ttlSeconds: 60 }).issue(
        { userId: userIds.ada, role: 'CUSTOMER', sessionId: randomUUID() },
        new Date(Date.now() - 3_600_000),
      )
    ).token;
    for (const token of [forged, expired, 'not-a-jwt']) {
      const closed = vi.fn();
      const tracking = record(connect(token, wsUrl, closed), FEED);
      await tracking.ended();
      expect(tracking.results).toEqual([]);
      expect(tracking.state.error).toMatchObject({ code: 4403, reason: 'Forbidden' });
    }
    expect(gateway.subscriptions.connections()).toBe(0);
  });

  it('closes a connection when its token expires', async () => {
    // A token that expires in two to three seconds (expiry has whole seconds).
    const token = await testAccessToken(userIds.chef, 'STAFF', { ttlSeconds: 3 });
    const feed = record(connect(token), FEED);
    await vi.waitFor(() => expect(gateway.subscriptions.listenerCounts().typeListeners).toBe(1));
    await feed.ended();
    expect(feed.state.error).toMatchObject({ code: 4403, reason: 'Token expired' });
    await settled();
  });
});

describe("the kitchen's feed (orderUpdates)", () => {
  it('is refused to a customer and to an anonymous connection', async () => {
    const customer = record(connect(tokens.ada), FEED);
    const anonymous = record(connect(), FEED);
    await Promise.all([customer.ended(), anonymous.ended()]);
    expect(customer.state.error).toEqual([
      expect.objectContaining({
        message: 'You may not subscribe to orderUpdates',
        extensions: { code: 'FORBIDDEN' },
      }),
    ]);
    expect(anonymous.state.error).toEqual([expect.objectContaining({ extensions: { code: 'UNAUTHENTICATED' } })]);
  });

  it('sends staff every change of every order, and does not complete on a final one', async () => {
    const [first, second] = [await placeOrder(tokens.ada), await placeOrder(tokens.grace)];
    const feed = record(connect(tokens.chef), FEED);
    await vi.waitFor(() => expect(gateway.subscriptions.listenerCounts().typeListeners).toBe(1));
    await publish(
      statusChanged(first, 'PENDING_PAYMENT', 'PAID', 2),
      statusChanged(second, 'PENDING_PAYMENT', 'CANCELLED', 2, true),
      statusChanged(first, 'PENDING_PAYMENT', 'PAID', 2), // repeated
      statusChanged(first, 'PAID', 'ACCEPTED', 3),
    );
    const results = await feed.received(3);
    expect(results.map((result) => result.data.orderUpdates)).toEqual([
      { id: first, state: 'PAID', version: 2, customer: { name: 'Ada Lovelace' } },
      { id: second, state: 'CANCELLED', version: 2, customer: { name: 'Grace Hopper' } },
      { id: first, state: 'ACCEPTED', version: 3, customer: { name: 'Ada Lovelace' } },
    ]);
    expect(feed.state).toEqual({ completed: false });
    feed.unsubscribe();
    await settled();
    expect(results).toHaveLength(3);
  });
});

describe("the kitchen's queue (kitchenQueue), declared in the orders subgraph's SDL alone", () => {
  const QUEUE = 'subscription { kitchenQueue { id status version } }';

  it('sends staff every change into, within and out of the kitchen, and nothing else', async () => {
    const [first, second] = [await placeOrder(), await placeOrder(tokens.grace)];
    const queue = record(connect(tokens.chef), QUEUE);
    await vi.waitFor(() => expect(gateway.subscriptions.activeSubscriptions()).toBe(1));
    await publish(
      statusChanged(second, 'PENDING_PAYMENT', 'CANCELLED', 2, true), // never in the kitchen
      statusChanged(first, 'PENDING_PAYMENT', 'PAID', 2), // in
      statusChanged(first, 'PAID', 'ACCEPTED', 3),
      statusChanged(first, 'ACCEPTED', 'PREPARING', 4),
      statusChanged(first, 'PREPARING', 'READY', 5),
      statusChanged(first, 'READY', 'OUT_FOR_DELIVERY', 6), // out
      statusChanged(first, 'OUT_FOR_DELIVERY', 'DELIVERED', 7, true), // past the kitchen
    );
    const results = await queue.received(5);
    expect(results.map((result) => `${result.data.kitchenQueue.status}/${result.data.kitchenQueue.version}`)).toEqual([
      'PAID/2',
      'ACCEPTED/3',
      'PREPARING/4',
      'READY/5',
      'OUT_FOR_DELIVERY/6',
    ]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(queue.results).toHaveLength(5);
    queue.unsubscribe();
    await settled();
  });

  it('is refused to a customer (FORBIDDEN) and to an anonymous connection (UNAUTHENTICATED)', async () => {
    const customer = record(connect(tokens.ada), QUEUE);
    const anonymous = record(connect(), QUEUE);
    await Promise.all([customer.ended(), anonymous.ended()]);
    expect(customer.state.error).toEqual([expect.objectContaining({ extensions: { code: 'FORBIDDEN' } })]);
    expect(anonymous.state.error).toEqual([expect.objectContaining({ extensions: { code: 'UNAUTHENTICATED' } })]);
  });
});

describe('limits and clean-up', () => {
  it(`refuses a subscription beyond ${MAX_PER_CONNECTION} on one connection, with a typed error`, async () => {
    const client = connect(tokens.chef);
    const open = Array.from({ length: MAX_PER_CONNECTION }, () => record(client, FEED));
    await vi.waitFor(() => expect(gateway.subscriptions.activeSubscriptions()).toBe(MAX_PER_CONNECTION));
    const refused = record(client, FEED);
    await refused.ended();
    expect(refused.state.error).toEqual([
      expect.objectContaining({
        message: `at most ${MAX_PER_CONNECTION} subscriptions per connection`,
        extensions: { code: 'TOO_MANY_SUBSCRIPTIONS', max: MAX_PER_CONNECTION },
      }),
    ]);
    // Another connection has its own allowance; one freed slot can be used again.
    const other = record(connect(tokens.chef), FEED);
    open[0]!.unsubscribe();
    const again = record(client, FEED);
    await vi.waitFor(() => expect(gateway.subscriptions.activeSubscriptions()).toBe(MAX_PER_CONNECTION + 1));
    expect(again.state).toEqual({ completed: false });
    for (const subscription of [...open.slice(1), other, again]) subscription.unsubscribe();
    await settled();
  });

  it('leaves no listener after unsubscribe and after the socket closes, with one tail for everyone', async () => {
    const orderId = await placeOrder();
    const client = connect(tokens.ada);
    const staff = connect(tokens.chef);
    const a = record(client, TRACK, { id: orderId });
    const b = record(client, TRACK, { id: orderId });
    const feed = record(staff, FEED);
    await Promise.all([a.received(1), b.received(1)]);
    await vi.waitFor(() =>
      // a and b share one topic (same operation, variables and caller): one listener for both.
      expect(gateway.subscriptions.listenerCounts()).toEqual({ indexedListeners: 1, typeListeners: 1, tails: 1 }),
    );
    expect(gateway.subscriptions.topics()).toBe(2);
    expect(gateway.subscriptions.activeSubscriptions()).toBe(3);
    a.unsubscribe();
    await vi.waitFor(() => expect(gateway.subscriptions.activeSubscriptions()).toBe(2));
    // b still follows the order through the topic a left.
    expect(gateway.subscriptions.listenerCounts().indexedListeners).toBe(1);
    await Promise.all([client.dispose(), staff.dispose()]);
    await settled();
    expect(gateway.subscriptions.connections()).toBe(0);
    expect(b.state.completed).toBe(true);
    expect(feed.state.completed).toBe(true);
    // One tail of the orders stream for this gateway process, whatever the number of subscribers
    // (besides its one tail of the sessions stream, for revoked sessions).
    expect(bus.tails).toBe(2);
    expect(bus.emitter.listenerCount('sessions')).toBe(1);
    expect(bus.emitter.listenerCount('orders')).toBe(1);
  });

  it('closes every socket with 1001 at shutdown, ends every subscription and stops the tail', async () => {
    const ownBus = new EmitterBus();
    const own = await startSubscriptionGateway(ownBus);
    extraGateways.push(own);
    const orderId = await placeOrder();
    const closes: number[] = [];
    const client = connect(tokens.ada, webSocketUrl(own.url), (event) => closes.push((event as { code: number }).code));
    const tracking = record(client, TRACK, { id: orderId });
    const feed = record(connect(tokens.chef, webSocketUrl(own.url)), FEED);
    await tracking.received(1);
    await vi.waitFor(() => expect(own.subscriptions.activeSubscriptions()).toBe(2));
    expect(ownBus.emitter.listenerCount('orders')).toBe(1);
    await own.close();
    expect(own.subscriptions.activeSubscriptions()).toBe(0);
    expect(own.subscriptions.listenerCounts()).toEqual({ indexedListeners: 0, typeListeners: 0, tails: 0 });
    expect(ownBus.emitter.listenerCount('orders')).toBe(0);
    await Promise.all([tracking.ended(), feed.ended()]);
    expect(tracking.state.error).toMatchObject({ code: 1001 });
    expect(closes).toEqual([1001]);
  });
});

describe('subscriptions elsewhere', () => {
  it('answers a subscription as a plain JSON POST or GET with a clear error naming the transports', async () => {
    const query = `subscription { orderUpdates { id } }`;
    for (const url of [gateway.url, t.supergraph.gatewayUrl]) {
      const posted = await t.post(url, { query }, bearer(tokens.chef));
      expect(posted.status).toBe(400);
      expect(posted.data).toBeUndefined();
      expect(posted.errors).toEqual([
        {
          message:
            'subscriptions are served on /graphql over WebSockets (graphql-ws), Server-Sent Events ' +
            '(Accept: text/event-stream) or multipart HTTP (Accept: multipart/mixed;subscriptionSpec="1.0")',
          extensions: { code: 'BAD_REQUEST' },
        },
      ]);
      const got = await fetch(`${url}?query=${encodeURIComponent(query)}`, {
        headers: { 'apollo-require-preflight': 'true', ...bearer(tokens.chef) },
      });
      expect(got.status).toBe(405);
      expect(((await got.json()) as { errors: unknown }).errors).toEqual(posted.errors);
    }
  });

  it('refuses subscribe on a gateway without an event bus, with a clear error', async () => {
    const busless = await startSubscriptionGateway(undefined);
    extraGateways.push(busless);
    expect(codes(await t.post(busless.url, { query: `{ __typename }` }))).toEqual([]);
    const tracking = record(connect(tokens.chef, webSocketUrl(busless.url)), FEED);
    await tracking.ended();
    expect(tracking.state.error).toEqual([
      expect.objectContaining({
        message: 'subscriptions are not available: this gateway has no event bus',
        extensions: { code: 'SUBSCRIPTIONS_UNAVAILABLE' },
      }),
    ]);
  });

  it('follows a real order through the real chain: mutations, outbox, relay, Redis, tail', async () => {
    // The supergraph's own gateway, as `pnpm start` runs it, on the supergraph's Redis bus.
    const redisGateway = t.supergraph.gateway;
    const orderId = await placeOrder();
    const paid = await t.gateway(
      `mutation ($input: PayForOrderInput!) { payForOrder(input: $input) { status } }`,
      { input: { orderId, paymentToken: 'tok_sandbox_success', idempotencyKey: `key-${randomUUID()}` } },
      bearer(tokens.ada),
    );
    expect(paid.errors).toBeUndefined();
    await vi.waitFor(
      async () => {
        const order = await t.gateway(
          `query ($id: ID!) { order(id: $id) { status } }`,
          { id: orderId },
          bearer(tokens.ada),
        );
        expect(order.data.order.status).toBe('PAID');
      },
      { timeout: 15_000, interval: 100 },
    );
    const tracking = record(connect(tokens.ada, webSocketUrl(redisGateway.url)), TRACK, { id: orderId });
    await tracking.received(1);
    const flow = ['ACCEPTED', 'PREPARING', 'READY', 'OUT_FOR_DELIVERY', 'DELIVERED'];
    for (const status of flow) {
      const changed = await t.gateway(
        `mutation ($input: ChangeOrderStatusInput!) { changeOrderStatus(input: $input) { status } }`,
        { input: { orderId, status } },
        bearer(tokens.chef),
      );
      expect(changed.errors).toBeUndefined();
    }
    await tracking.ended(15_000);
    expect(tracking.state).toEqual({ completed: true });
    expect(statusesOf(tracking.results)).toEqual(WHOLE_JOURNEY.slice(1));
    expect(tracking.results.at(-1).data.orderStatusChanged.payment).toEqual({ status: 'SUCCEEDED' });
    await vi.waitFor(() => expect(redisGateway.subscriptions.activeSubscriptions()).toBe(0));
  });
});

describe("the menu's live availability (mealAvailabilityChanged), through the real chain", () => {
  const LIVE_MENU = `subscription Menu($ids: [ID!]) {
    mealAvailabilityChanged(mealIds: $ids) { id name available price { amount currency } version category { name } }
  }`;
  const UPDATE_MEAL = `mutation ($id: ID!, $input: UpdateMealInput!) { updateMeal(id: $id, input: $input) { id } }`;
  type LiveMeal = { id: string; name: string; available: boolean; price: { amount: number }; version: number };

  async function updateMeal(id: string, input: Record<string, unknown>) {
    const updated = await t.gateway(UPDATE_MEAL, { id, input }, bearer(tokens.chef));
    expect(updated.errors).toBeUndefined();
  }

  it('sends anyone the current state of the meals asked for, then each availability or price change of them only', async () => {
    // The supergraph's own gateway on Redis: staff's mutations, the meals outbox, its relay, the tail.
    const redisGateway = t.supergraph.gateway;
    const menu = await t.gateway(
      `{ meals(first: 3, filter: { available: true }) { edges { node { id name available price { amount currency } version category { name } } } } }`,
    );
    const [a, b, c] = menu.data.meals.edges.map((edge: { node: LiveMeal }) => edge.node) as LiveMeal[];
    const url = webSocketUrl(redisGateway.url);
    const tracking = record(connect(undefined, url), LIVE_MENU, { ids: [a!.id, b!.id] });
    // The current state of both first, for an anonymous subscriber.
    expect((await tracking.received(2)).map((result) => result.data.mealAvailabilityChanged)).toEqual([a, b]);
    const everyMeal = record(connect(undefined, url), LIVE_MENU);
    await vi.waitFor(() => expect(redisGateway.subscriptions.listenerCounts().typeListeners).toBe(1));

    await updateMeal(a!.id, { available: false });
    await updateMeal(c!.id, { priceAmount: c!.price.amount + 50 });
    await updateMeal(b!.id, { priceAmount: b!.price.amount + 100 });
    await updateMeal(a!.id, { name: `${a!.name} (new)` }); // neither availability nor price
    await updateMeal(b!.id, { priceAmount: b!.price.amount + 100, available: true }); // as they are
    await updateMeal(a!.id, { available: true, priceAmount: a!.price.amount + 25 });
    await updateMeal(b!.id, { priceAmount: b!.price.amount });

    const change = (meal: LiveMeal, changes: Partial<LiveMeal>, versions: number, amount = meal.price.amount) => ({
      ...meal,
      ...changes,
      price: { ...meal.price, amount },
      version: meal.version + versions,
    });
    const expected = [
      change(a!, { available: false }, 1),
      change(b!, {}, 1, b!.price.amount + 100),
      change(a!, { name: `${a!.name} (new)`, available: true }, 3, a!.price.amount + 25),
      change(b!, {}, 3),
    ];
    // The last change of B comes last: once it is here, everything before it has been handled.
    const results = await tracking.received(2 + expected.length, 15_000);
    expect(results.slice(2).map((result) => result.data.mealAvailabilityChanged)).toEqual(expected);
    const all = await everyMeal.received(5, 15_000);
    expect(all.map((result) => result.data.mealAvailabilityChanged)).toEqual([
      expected[0],
      change(c!, {}, 1, c!.price.amount + 50),
      ...expected.slice(1),
    ]);
    expect(tracking.state).toEqual({ completed: false });
    tracking.unsubscribe();
    everyMeal.unsubscribe();
    await vi.waitFor(() => expect(redisGateway.subscriptions.activeSubscriptions()).toBe(0));
    expect(tracking.results).toHaveLength(2 + expected.length);
    expect(everyMeal.results).toHaveLength(5);
  });
});
