import { Supergraph } from '@apollo/federation-internals';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createLogger, newEvent, type DomainEvent } from '@food/platform';
import { describe, expect, it, vi } from 'vitest';
import { EmitterBus } from '@food/platform/testing';
import { supergraphPath } from '../compose/compose.js';
import { getOperationAST, parse } from '../graphql-js.js';
import { readLiveFields } from './declarations.js';
import { SupergraphGateway } from '../execution/supergraph-gateway.js';
import { LiveExecutor, type EntityRepresentation, type PreparedSubscription, type Resolution } from './executor.js';
import { EventHub } from './hub.js';
import {
  deliveryOf,
  entitiesFromArguments,
  LiveSubscription,
  LiveTopic,
  type EntityResolver,
  type RetryPolicy,
  sharedWhileInFlight,
  type TopicHost,
} from './stream.js';

/**
 * Topics and subscriptions on their own: the declarations and plans of the committed supergraph, the
 * hub over an in-memory bus, and a resolver standing in for the subgraphs (the real one is in
 * e2e/src/subscriptions.test.ts).
 */

const logger = createLogger('test', 'silent');
const supergraphSdl = readFileSync(fileURLToPath(supergraphPath), 'utf8');
const liveFields = readLiveFields(supergraphSdl);
const executor = new LiveExecutor(
  new SupergraphGateway({ supergraph: Supergraph.build(supergraphSdl), supergraphSdl, services: new Map() }),
  logger,
);
const fastRetry: RetryPolicy = { initialDelayMs: 5, maxDelayMs: 20, giveUpAfterMs: 300 };

const customerId = randomUUID();
const change = (orderId: string, from: string, to: string, version: number) =>
  newEvent('order.status_changed', orderId, {
    orderId,
    customerId,
    from: from as never,
    to: to as never,
    version,
    final: ['DELIVERED', 'CANCELLED', 'REFUNDED'].includes(to),
    actor: { kind: 'user', id: customerId },
    reason: null,
  });

const TRACK = 'subscription ($id: ID!) { o: orderStatusChanged(orderId: $id) { id status s: status version } }';
const FEED = 'subscription { o: orderUpdates { id status version } }';

function prepare(query: string): PreparedSubscription {
  const document = parse(query, { noLocation: true });
  const operation = getOperationAST(document)!;
  const field = (operation.selectionSet.selections[0] as { name: { value: string } }).name.value;
  return executor.prepare(document, operation, liveFields.get(field)!);
}

type Row = { status: string; version: number } | null;

/**
 * Orders "in the database", resolved as the executor would shape them (hidden fields included),
 * after a random delay; `outage` answers UPSTREAM_UNAVAILABLE while it is set.
 */
function fakeResolver(prepared: PreparedSubscription, orders: Map<string, Row>) {
  let resolutions = 0;
  const state = { outage: false };
  const resolve: EntityResolver = async (entity: EntityRepresentation) => {
    resolutions++;
    // Read at the call, answered after a while (a query reads the database when it runs).
    const row = orders.get(String(entity.id));
    const down = state.outage;
    await new Promise((done) => setTimeout(done, Math.random() * 10));
    if (down) {
      return {
        result: {
          data: null,
          errors: [{ message: 'orders is unavailable', extensions: { code: 'UPSTREAM_UNAVAILABLE' } }],
        },
        hidden: null,
      };
    }
    if (!row) return { result: { data: null }, hidden: null } satisfies Resolution;
    const hidden: Record<string, unknown> = {};
    for (const field of prepared.hidden.keys()) hidden[field] = row[field as keyof typeof row];
    return {
      result: { data: { o: { id: entity.id, status: row.status, s: row.status, version: row.version } } },
      hidden,
    };
  };
  return { resolve, state, resolutions: () => resolutions };
}

function harness(query: string, orders: Map<string, Row>) {
  const bus = new EmitterBus();
  const hub = new EventHub(bus, logger);
  const prepared = prepare(query);
  const resolver = fakeResolver(prepared, orders);
  const host: TopicHost = {
    hub,
    retry: fastRetry,
    logger,
    resolve: (_prepared, entity) => resolver.resolve(entity),
    shared: sharedWhileInFlight(),
    closed: () => {},
  };
  const anonymousContext = {
    caller: { kind: 'anonymous' as const },
    requestId: 'test',
    clientAddress: '127.0.0.1',
    transport: 'websocket' as const,
  };
  const topic = (args: Record<string, unknown>, key = 'test', resolutionKey = key) =>
    new LiveTopic(host, prepared, args, {}, anonymousContext, key, resolutionKey);
  const subscribe = (t: LiveTopic, args: Record<string, unknown>, extra: { onRetryableEnd?: () => void } = {}) =>
    new LiveSubscription({
      topic: t,
      prepared,
      current: entitiesFromArguments(prepared.live, args),
      resolveCurrent: resolver.resolve,
      retry: fastRetry,
      logger,
      ...extra,
    });
  const publish = async (...events: DomainEvent[]) => {
    for (const event of events) await bus.publish('orders', event);
  };
  return { bus, hub, prepared, resolver, topic, subscribe, publish };
}

async function readAll(stream: AsyncIterator<unknown>, limit = 50) {
  const values: any[] = [];
  for (let i = 0; i < limit; i++) {
    const next = await stream.next();
    if (next.done) return values;
    values.push(next.value);
  }
  throw new Error(`more than ${limit} results`);
}

const statusesOf = (results: any[]) => results.map((result) => `${result.data.o.status}/${result.data.o.version}`);

describe('one subscriber of one order (orderStatusChanged)', () => {
  it('gets the current state, then each change once, in version order, with the change status, and completes', async () => {
    const orderId = randomUUID();
    const orders = new Map<string, Row>([[orderId, { status: 'PENDING_PAYMENT', version: 1 }]]);
    const t = harness(TRACK, orders);
    const args = { orderId };
    const stream = t.subscribe(t.topic(args), args);
    const results = readAll(stream);
    await vi.waitFor(() => expect(t.hub.counts().indexedListeners).toBe(1));
    await new Promise((done) => setTimeout(done, 30));
    // The database moves on faster than the changes are resolved: each result still shows its change.
    orders.set(orderId, { status: 'DELIVERED', version: 5 });
    await t.publish(
      change(orderId, 'PENDING_PAYMENT', 'PAID', 2),
      change(orderId, 'PENDING_PAYMENT', 'PAID', 2),
      change(orderId, 'PAID', 'ACCEPTED', 3),
      change(orderId, 'PENDING_PAYMENT', 'PAID', 2),
      change(orderId, 'ACCEPTED', 'PREPARING', 4),
      change(orderId, 'PREPARING', 'DELIVERED', 5),
      change(orderId, 'DELIVERED', 'DELIVERED', 6),
    );
    const all = await results;
    expect(statusesOf(all)).toEqual(['PENDING_PAYMENT/1', 'PAID/2', 'ACCEPTED/3', 'PREPARING/4', 'DELIVERED/5']);
    // At every key the client selected the status at (here `status` and `s`).
    expect(all.map((result) => result.data.o.s)).toEqual(statusesOf(all).map((s) => s.split('/')[0]));
    expect(t.hub.counts().indexedListeners).toBe(0);
  });

  it('drops changes the current state already shows when it races them', async () => {
    const orderId = randomUUID();
    const orders = new Map<string, Row>([[orderId, { status: 'ACCEPTED', version: 3 }]]);
    const t = harness(TRACK, orders);
    const args = { orderId };
    const stream = t.subscribe(t.topic(args), args);
    await vi.waitFor(() => expect(t.hub.counts().indexedListeners).toBe(1));
    // Published while the current state is being resolved.
    await t.publish(change(orderId, 'PAID', 'ACCEPTED', 3), change(orderId, 'ACCEPTED', 'PREPARING', 4));
    orders.set(orderId, { status: 'DELIVERED', version: 5 });
    await t.publish(change(orderId, 'PREPARING', 'DELIVERED', 5));
    expect(statusesOf(await readAll(stream))).toEqual(['ACCEPTED/3', 'PREPARING/4', 'DELIVERED/5']);
  });

  it('completes right after a current state that is already final', async () => {
    const orderId = randomUUID();
    const t = harness(TRACK, new Map([[orderId, { status: 'CANCELLED', version: 2 }]]));
    const args = { orderId };
    expect(statusesOf(await readAll(t.subscribe(t.topic(args), args)))).toEqual(['CANCELLED/2']);
  });

  it('ends with NOT_FOUND, and no data, when the subgraph answers null for the caller', async () => {
    const orderId = randomUUID();
    const t = harness(TRACK, new Map());
    const args = { orderId };
    const stream = t.subscribe(t.topic(args), args);
    await expect(stream.next()).rejects.toMatchObject({
      message: `Order ${orderId} was not found`,
      extensions: { code: 'NOT_FOUND' },
    });
    expect(await stream.next()).toEqual({ done: true, value: undefined });
  });

  it('stops at once on return(), while waiting for a change', async () => {
    const orderId = randomUUID();
    const t = harness(TRACK, new Map([[orderId, { status: 'PAID', version: 2 }]]));
    const args = { orderId };
    const stream = t.subscribe(t.topic(args), args);
    expect(statusesOf([(await stream.next()).value])).toEqual(['PAID/2']);
    const waiting = stream.next();
    await stream.return();
    expect(await waiting).toEqual({ done: true, value: undefined });
    expect(t.hub.counts().indexedListeners).toBe(0);
  });
});

describe('a subgraph that blinks loses nothing', () => {
  it('retries a change whose resolution fails upstream: every status arrives, once and in order', async () => {
    const orderId = randomUUID();
    const orders = new Map<string, Row>([[orderId, { status: 'PAID', version: 2 }]]);
    const t = harness(TRACK, orders);
    const args = { orderId };
    const stream = t.subscribe(t.topic(args), args);
    const results = readAll(stream);
    await vi.waitFor(() => expect(t.resolver.resolutions()).toBe(1));
    await new Promise((done) => setTimeout(done, 20));
    // The orders subgraph goes down just as the kitchen's changes arrive, and comes back.
    t.resolver.state.outage = true;
    await t.publish(change(orderId, 'PAID', 'ACCEPTED', 3), change(orderId, 'ACCEPTED', 'PREPARING', 4));
    await vi.waitFor(() => expect(t.resolver.resolutions()).toBeGreaterThan(4));
    t.resolver.state.outage = false;
    await t.publish(change(orderId, 'PREPARING', 'DELIVERED', 5));
    const all = await results;
    expect(statusesOf(all)).toEqual(['PAID/2', 'ACCEPTED/3', 'PREPARING/4', 'DELIVERED/5']);
    // No result was a failed resolution.
    for (const result of all) expect(result.errors).toBeUndefined();
  });

  it('retries the current state of a subscribe during an outage', async () => {
    const orderId = randomUUID();
    const t = harness(TRACK, new Map([[orderId, { status: 'READY', version: 6 }]]));
    t.resolver.state.outage = true;
    const args = { orderId };
    const stream = t.subscribe(t.topic(args), args);
    const first = stream.next();
    await vi.waitFor(() => expect(t.resolver.resolutions()).toBeGreaterThan(2));
    t.resolver.state.outage = false;
    expect(statusesOf([(await first).value])).toEqual(['READY/6']);
    await stream.return();
  });

  it('ends with a retryable end, never a null result, when the outage outlasts the retries', async () => {
    const orderId = randomUUID();
    const t = harness(TRACK, new Map([[orderId, { status: 'PAID', version: 2 }]]));
    const args = { orderId };
    const onRetryableEnd = vi.fn();
    const stream = t.subscribe(t.topic(args), args, { onRetryableEnd });
    expect(statusesOf([(await stream.next()).value])).toEqual(['PAID/2']);
    t.resolver.state.outage = true;
    await t.publish(change(orderId, 'PAID', 'ACCEPTED', 3));
    // Completes (the transport closed with a retryable code); no result with `data: null` went out.
    expect(await stream.next()).toEqual({ done: true, value: undefined });
    expect(onRetryableEnd).toHaveBeenCalledOnce();
    // Without a transport hook, the same end is a retryable typed error.
    const plain = t.subscribe(t.topic(args), args);
    await expect(plain.next()).rejects.toMatchObject({
      extensions: { code: 'UPSTREAM_UNAVAILABLE', retryable: true },
    });
  });
});

describe('one resolution per topic', () => {
  it('resolves each change once for every subscriber of the topic, and each gets it', async () => {
    const orderIds = [randomUUID(), randomUUID()];
    const orders = new Map<string, Row>(orderIds.map((id) => [id, { status: 'PAID', version: 2 }]));
    const t = harness(FEED, orders);
    const topic = t.topic({});
    const subscribers = Array.from({ length: 50 }, () => t.subscribe(topic, {}));
    await vi.waitFor(() => expect(topic.size).toBe(50));
    expect(t.hub.counts()).toMatchObject({ typeListeners: 1, tails: 1 });
    await t.publish(
      change(orderIds[0]!, 'PAID', 'ACCEPTED', 3),
      change(orderIds[1]!, 'PAID', 'CANCELLED', 3),
      change(orderIds[0]!, 'PAID', 'ACCEPTED', 3),
      change(orderIds[0]!, 'ACCEPTED', 'DELIVERED', 4),
    );
    for (const subscriber of subscribers) {
      const got = [await subscriber.next(), await subscriber.next(), await subscriber.next()].map((r) => r.value);
      // A final status does not end a feed.
      expect(statusesOf(got)).toEqual(['ACCEPTED/3', 'CANCELLED/3', 'DELIVERED/4']);
    }
    expect(t.resolver.resolutions()).toBe(3);
    await Promise.all(subscribers.map((subscriber) => subscriber.return()));
    expect(t.hub.counts().typeListeners).toBe(0);
  });
});

describe('topics that resolve alike', () => {
  it('resolve an event once between them when their resolution keys match, and apart when not', async () => {
    const orderId = randomUUID();
    const orders = new Map<string, Row>([[orderId, { status: 'PAID', version: 2 }]]);
    const t = harness(TRACK, orders);
    const [first, second, other] = [
      t.topic({ orderId }, 'a', 'same'),
      t.topic({ orderId }, 'b', 'same'),
      t.topic({ orderId }, 'c'),
    ];
    const subscribers = [first, second, other].map((topic) => t.subscribe(topic, { orderId }));
    // The current states (one per subscriber, not shared: each is the subscriber's own).
    await Promise.all(subscribers.map((subscriber) => subscriber.next()));
    const before = t.resolver.resolutions();
    orders.set(orderId, { status: 'ACCEPTED', version: 3 });
    await t.publish(change(orderId, 'PAID', 'ACCEPTED', 3));
    for (const subscriber of subscribers) expect(statusesOf([(await subscriber.next()).value])).toEqual(['ACCEPTED/3']);
    expect(t.resolver.resolutions() - before).toBe(2);
    await Promise.all(subscribers.map((subscriber) => subscriber.return()));
  });

  it("read only the selection's variables, not the root field's arguments, for what they share", () => {
    const query = `subscription ($ids: [ID!], $all: Boolean!) {
      m: mealAvailabilityChanged(mealIds: $ids) { id ...P }
    }
    fragment P on Meal { available @include(if: $all) }`;
    expect(prepare(query).resolutionVariables).toEqual(['all']);
    expect(
      prepare('subscription ($ids: [ID!]) { mealAvailabilityChanged(mealIds: $ids) { id } }').resolutionVariables,
    ).toEqual([]);
  });
});

describe('the event hub', () => {
  it('tails a stream once for every listener, narrows by index, and stops the tail on close', async () => {
    const bus = new EmitterBus();
    const hub = new EventHub(bus, logger);
    const [a, b] = [randomUUID(), randomUUID()];
    const seen: string[] = [];
    const offA = await hub.listen('order.status_changed', { field: 'orderId', values: [a] }, () => seen.push('a'));
    await hub.listen('order.status_changed', { field: 'orderId', values: [a, b] }, () => seen.push('ab'));
    await hub.listen('order.status_changed', undefined, () => seen.push('all'));
    expect(bus.tails).toBe(1);
    await bus.publish('orders', change(a, 'PAID', 'ACCEPTED', 3));
    await bus.publish('orders', change(b, 'PAID', 'ACCEPTED', 3));
    await bus.publish('orders', change(randomUUID(), 'PAID', 'ACCEPTED', 3));
    expect(seen).toEqual(['all', 'a', 'ab', 'all', 'ab', 'all']);
    offA();
    expect(hub.counts()).toEqual({ indexedListeners: 2, typeListeners: 1, tails: 1 });
    await hub.close();
    expect(bus.emitter.listenerCount('orders')).toBe(0);
  });

  it('refuses a listener when the tail cannot start, and tries again for the next one', async () => {
    const bus = new EmitterBus();
    const hub = new EventHub(bus, logger);
    bus.failTail = true;
    await expect(hub.listen('order.status_changed', undefined, () => {})).rejects.toThrow('redis is down');
    expect(hub.counts()).toEqual({ indexedListeners: 0, typeListeners: 0, tails: 0 });
    bus.failTail = false;
    await hub.listen('order.status_changed', undefined, () => {});
    expect(bus.tails).toBe(2);
    await hub.close();
  });

  it('ends a subscription with a retryable end when its topic cannot listen', async () => {
    const orderId = randomUUID();
    const t = harness(TRACK, new Map([[orderId, { status: 'PAID', version: 2 }]]));
    t.bus.failTail = true;
    const args = { orderId };
    await expect(t.subscribe(t.topic(args), args).next()).rejects.toMatchObject({
      extensions: { code: 'UPSTREAM_UNAVAILABLE', retryable: true },
    });
  });
});

describe("an event's fields in each result", () => {
  it('puts an object field of the event in the shape the client selected: aliases, its fields only', () => {
    const prepared = prepare(
      'subscription ($ids: [ID!]) { m: mealAvailabilityChanged(mealIds: $ids) { id available ...Cost } } ' +
        'fragment Cost on Meal { cost: price { __typename cents: amount } }',
    );
    const mealId = randomUUID();
    const resolved = {
      result: { data: { m: { id: mealId, available: true, cost: { __typename: 'Money', cents: 900 } } } },
      hidden: { version: 3 },
    };
    const projection = new Map<string, unknown>([
      ['available', false],
      ['price', { amount: 1250, currency: 'EUR' }],
      ['version', 4],
    ]);
    const delivery = deliveryOf(prepared, resolved, { __typename: 'Meal', id: mealId }, projection);
    expect(delivery.value.data).toEqual({
      m: { id: mealId, available: false, cost: { __typename: 'Money', cents: 1250 } },
    });
    expect(delivery.version).toBe(4);
  });
});
