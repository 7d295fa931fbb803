import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { createLogger, newEvent, type DomainEvent, type EventBus, type EventStream } from '@food/platform';
import { describe, expect, it, vi } from 'vitest';
import { parse } from '../graphql-js.js';
import { OrderEventHub } from './hub.js';
import { shapeResult, type SubscriptionPlan } from './operation.js';
import { OrderSubscriptionStream, type OrderResolver } from './stream.js';

const logger = createLogger('test', 'silent');

/** A minimal event bus: `tail` listens on an EventEmitter; `publish` emits synchronously. */
class EmitterBus implements EventBus {
  readonly emitter = new EventEmitter();
  tails = 0;
  failTail = false;
  async publish(stream: EventStream, event: DomainEvent) {
    this.emitter.emit(stream, event);
  }
  async consume(): Promise<never> {
    throw new Error('not used by the gateway');
  }
  async tail(stream: EventStream, handler: (event: DomainEvent) => void) {
    this.tails++;
    if (this.failTail) throw new Error('redis is down');
    this.emitter.on(stream, handler);
    return { close: async () => void this.emitter.off(stream, handler) };
  }
  async close() {}
}

const customerId = randomUUID();
const change = (orderId: string, from: string, to: string, version: number, final = false) =>
  newEvent('order.status_changed', orderId, {
    orderId,
    customerId,
    from: from as never,
    to: to as never,
    version,
    final,
    actor: { kind: 'user', id: customerId },
    reason: null,
  });

/** A plan as planSubscription makes it: the order at key `o`, status selected as `status` and `s`. */
function fakePlan(orderId?: string): SubscriptionPlan {
  return {
    document: parse('subscription { orderUpdates { id } }'),
    field: orderId ? 'orderStatusChanged' : 'orderUpdates',
    responseKey: 'o',
    orderId,
    query: 'unused',
    statusKeys: ['status', 's'],
    versionKeys: ['version'],
    hiddenStatusKey: 'hs',
    hiddenVersionKey: 'hv',
    variables: () => ({}),
  };
}

/** Orders "in the database", resolved with a random delay, counting resolutions. */
function fakeResolver(plan: SubscriptionPlan, orders: Map<string, { status: string; version: number } | null>) {
  let resolutions = 0;
  const resolve: OrderResolver = async (orderId, overrides) => {
    const n = ++resolutions;
    await new Promise((done) => setTimeout(done, Math.random() * 15));
    const order = orders.get(orderId);
    if (!order) {
      return shapeResult(plan, {
        data: null,
        errors: [{ message: 'Order not found', extensions: { code: 'NOT_FOUND' } }],
      });
    }
    const o = {
      id: orderId,
      status: order.status,
      s: order.status,
      version: order.version,
      n,
      hs: order.status,
      hv: order.version,
    };
    return shapeResult(plan, { data: { o } }, overrides);
  };
  return { resolve, resolutions: () => resolutions };
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
  it('gets the snapshot, then each change once, in version order, with the change status, and completes', async () => {
    const bus = new EmitterBus();
    const hub = new OrderEventHub(bus, logger);
    const orderId = randomUUID();
    const plan = fakePlan(orderId);
    const { resolve, resolutions } = fakeResolver(plan, new Map([[orderId, { status: 'PAID', version: 2 }]]));
    const ended = vi.fn();
    const stream = new OrderSubscriptionStream({ plan, hub, resolve, logger, onEnd: ended });
    await vi.waitFor(() => expect(hub.counts().orderListeners).toBe(1));
    // All at once, while the snapshot is still resolving: the first is what the snapshot shows.
    for (const event of [
      change(orderId, 'PENDING_PAYMENT', 'PAID', 2),
      change(orderId, 'PAID', 'ACCEPTED', 3),
      change(orderId, 'PAID', 'ACCEPTED', 3),
      change(orderId, 'ACCEPTED', 'PREPARING', 4),
      change(orderId, 'PAID', 'ACCEPTED', 3),
      change(randomUUID(), 'PAID', 'ACCEPTED', 3),
      change(orderId, 'PREPARING', 'READY', 5),
      change(orderId, 'READY', 'OUT_FOR_DELIVERY', 6),
      change(orderId, 'OUT_FOR_DELIVERY', 'DELIVERED', 7, true),
      change(orderId, 'OUT_FOR_DELIVERY', 'DELIVERED', 7, true),
    ]) {
      await bus.publish('orders', event);
    }
    const results = await readAll(stream);
    expect(statusesOf(results)).toEqual([
      'PAID/2',
      'ACCEPTED/3',
      'PREPARING/4',
      'READY/5',
      'OUT_FOR_DELIVERY/6',
      'DELIVERED/7',
    ]);
    // Every selection of status carries the change's status; other fields were resolved per change.
    expect(results.map((result) => result.data.o.s)).toEqual(statusesOf(results).map((s) => s.split('/')[0]));
    expect(results.map((result) => result.data.o.n)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(results[1].data.o).not.toHaveProperty('hs');
    expect(resolutions()).toBe(6);
    expect(ended).toHaveBeenCalledTimes(1);
    expect(hub.counts()).toMatchObject({ orders: 0, orderListeners: 0, feedListeners: 0 });
  });

  it('drops changes the snapshot already shows when the snapshot races them', async () => {
    const bus = new EmitterBus();
    const hub = new OrderEventHub(bus, logger);
    const orderId = randomUUID();
    const plan = fakePlan(orderId);
    const orders = new Map([[orderId, { status: 'PREPARING', version: 4 }]]);
    const { resolve } = fakeResolver(plan, orders);
    const stream = new OrderSubscriptionStream({ plan, hub, resolve, logger });
    await vi.waitFor(() => expect(hub.counts().orderListeners).toBe(1));
    await bus.publish('orders', change(orderId, 'PAID', 'ACCEPTED', 3));
    await bus.publish('orders', change(orderId, 'ACCEPTED', 'PREPARING', 4));
    expect(await stream.next()).toMatchObject({ value: { data: { o: { status: 'PREPARING', version: 4 } } } });
    await bus.publish('orders', change(orderId, 'PREPARING', 'READY', 5));
    expect(await stream.next()).toMatchObject({ value: { data: { o: { status: 'READY', version: 5 } } } });
    await stream.return();
    expect(hub.counts().orderListeners).toBe(0);
  });

  it('completes right after a snapshot with a final status', async () => {
    for (const status of ['DELIVERED', 'CANCELLED', 'REFUNDED']) {
      const hub = new OrderEventHub(new EmitterBus(), logger);
      const orderId = randomUUID();
      const plan = fakePlan(orderId);
      const { resolve } = fakeResolver(plan, new Map([[orderId, { status, version: 9 }]]));
      const results = await readAll(new OrderSubscriptionStream({ plan, hub, resolve, logger }));
      expect(statusesOf(results)).toEqual([`${status}/9`]);
      expect(hub.counts().orderListeners).toBe(0);
    }
  });

  it("ends with the subgraph's error, and no data, when the order does not resolve for the caller", async () => {
    const hub = new OrderEventHub(new EmitterBus(), logger);
    const orderId = randomUUID();
    const plan = fakePlan(orderId);
    const { resolve } = fakeResolver(plan, new Map());
    const ended = vi.fn();
    const stream = new OrderSubscriptionStream({ plan, hub, resolve, logger, onEnd: ended });
    const error = await stream.next().then(
      () => undefined,
      (reason: unknown) => reason,
    );
    expect(error).toMatchObject({ message: 'Order not found', extensions: { code: 'NOT_FOUND' } });
    expect(await stream.next()).toEqual({ done: true, value: undefined });
    expect(ended).toHaveBeenCalledTimes(1);
    expect(hub.counts().orderListeners).toBe(0);
  });

  it('stops at once on return(), while waiting for a change or while resolving', async () => {
    const bus = new EmitterBus();
    const hub = new OrderEventHub(bus, logger);
    const orderId = randomUUID();
    const plan = fakePlan(orderId);
    const { resolve, resolutions } = fakeResolver(plan, new Map([[orderId, { status: 'PAID', version: 2 }]]));
    const waiting = new OrderSubscriptionStream({ plan, hub, resolve, logger });
    await waiting.next();
    const pending = waiting.next();
    expect(hub.counts().orderListeners).toBe(1);
    await waiting.return();
    expect(await pending).toEqual({ done: true, value: undefined });
    expect(hub.counts().orderListeners).toBe(0);

    const resolving = new OrderSubscriptionStream({ plan, hub, resolve, logger });
    await vi.waitFor(() => expect(resolutions()).toBe(2));
    await resolving.return();
    expect(hub.counts().orderListeners).toBe(0);
    await bus.publish('orders', change(orderId, 'PAID', 'ACCEPTED', 3));
    await new Promise((done) => setTimeout(done, 30));
    expect(await resolving.next()).toEqual({ done: true, value: undefined });
    expect(resolutions()).toBe(2);
  });

  it('ends a subscriber that falls too far behind', async () => {
    const bus = new EmitterBus();
    const hub = new OrderEventHub(bus, logger);
    const orderId = randomUUID();
    const plan = fakePlan(orderId);
    let release!: () => void;
    const blocked = new Promise<void>((done) => (release = done));
    const { resolve: resolveNow } = fakeResolver(plan, new Map([[orderId, { status: 'PAID', version: 2 }]]));
    const resolve: OrderResolver = async (id, overrides) => {
      if (overrides) await blocked;
      return resolveNow(id, overrides);
    };
    const stream = new OrderSubscriptionStream({ plan, hub, resolve, logger, maxPendingEvents: 2 });
    await stream.next();
    for (let version = 3; version <= 6; version++) {
      await bus.publish('orders', change(orderId, 'PAID', 'ACCEPTED', version));
    }
    release();
    const error = await stream.next().then(
      () => undefined,
      (reason: unknown) => reason,
    );
    expect(error).toMatchObject({ extensions: { code: 'SUBSCRIPTION_OVERFLOW' } });
    expect(hub.counts().orderListeners).toBe(0);
  });
});

describe("the kitchen's feed (orderUpdates)", () => {
  it('gets every change of every order once, with the change status, and does not complete on a final one', async () => {
    const bus = new EmitterBus();
    const hub = new OrderEventHub(bus, logger);
    const [a, b] = [randomUUID(), randomUUID()];
    const plan = fakePlan();
    const { resolve } = fakeResolver(
      plan,
      new Map([
        [a, { status: 'DELIVERED', version: 9 }],
        [b, { status: 'PAID', version: 2 }],
      ]),
    );
    const stream = new OrderSubscriptionStream({ plan, hub, resolve, logger });
    await vi.waitFor(() => expect(hub.counts().feedListeners).toBe(1));
    for (const event of [
      change(a, 'PAID', 'ACCEPTED', 3),
      change(b, 'PENDING_PAYMENT', 'PAID', 2),
      change(a, 'PAID', 'ACCEPTED', 3),
      change(a, 'ACCEPTED', 'PREPARING', 4),
      change(b, 'PAID', 'CANCELLED', 3, true),
      change(a, 'PREPARING', 'READY', 5),
    ]) {
      await bus.publish('orders', event);
    }
    const results = [];
    for (let i = 0; i < 5; i++) results.push(((await stream.next()) as IteratorYieldResult<any>).value);
    expect(
      results.map((result) => `${result.data.o.id === a ? 'a' : 'b'}:${result.data.o.status}/${result.data.o.version}`),
    ).toEqual(['a:ACCEPTED/3', 'b:PAID/2', 'a:PREPARING/4', 'b:CANCELLED/3', 'a:READY/5']);
    const more = stream.next();
    await bus.publish('orders', change(b, 'PAID', 'CANCELLED', 3, true));
    await bus.publish('orders', change(a, 'READY', 'OUT_FOR_DELIVERY', 6));
    expect(await more).toMatchObject({ done: false, value: { data: { o: { id: a, status: 'OUT_FOR_DELIVERY' } } } });
    await stream.return();
    expect(hub.counts().feedListeners).toBe(0);
  });
});

describe('the order event hub', () => {
  it('tails the orders stream once for every subscriber, and stops the tail on close', async () => {
    const bus = new EmitterBus();
    const hub = new OrderEventHub(bus, logger);
    const orderId = randomUUID();
    const listeners = await Promise.all([
      hub.listen(orderId, () => {}),
      hub.listen(orderId, () => {}),
      hub.listen(randomUUID(), () => {}),
      hub.listenAll(() => {}),
    ]);
    expect(bus.tails).toBe(1);
    expect(bus.emitter.listenerCount('orders')).toBe(1);
    expect(hub.counts()).toEqual({ orders: 2, orderListeners: 3, feedListeners: 1, tailing: true });
    listeners[0]!();
    listeners[0]!();
    expect(hub.counts()).toMatchObject({ orders: 2, orderListeners: 2 });
    await hub.close();
    expect(hub.counts()).toEqual({ orders: 0, orderListeners: 0, feedListeners: 0, tailing: false });
    expect(bus.emitter.listenerCount('orders')).toBe(0);
    await expect(hub.listen(orderId, () => {})).rejects.toThrow('closed');
  });

  it('refuses a subscriber when the tail cannot start, and tries again for the next one', async () => {
    const bus = new EmitterBus();
    bus.failTail = true;
    const hub = new OrderEventHub(bus, logger);
    const orderId = randomUUID();
    const plan = fakePlan(orderId);
    const { resolve } = fakeResolver(plan, new Map([[orderId, { status: 'PAID', version: 2 }]]));
    const failing = new OrderSubscriptionStream({ plan, hub, resolve, logger });
    await expect(failing.next()).rejects.toMatchObject({ extensions: { code: 'UPSTREAM_UNAVAILABLE' } });
    expect(hub.counts()).toMatchObject({ orderListeners: 0, tailing: false });
    bus.failTail = false;
    const working = new OrderSubscriptionStream({ plan, hub, resolve, logger });
    expect(await working.next()).toMatchObject({ done: false });
    expect(bus.tails).toBe(2);
    await working.return();
  });
});
