import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import {
  changedEntitiesOf,
  eventDataFields,
  eventDefinitions,
  eventTypes,
  newEvent,
  parseEvent,
  streamOf,
  type DomainEvent,
  type EventType,
} from './events.js';

const ids = { order: randomUUID(), customer: randomUUID(), payment: randomUUID(), meal: randomUUID() };
const money = { amount: 1200, currency: 'EUR' };

/** One event of every type (the compiler insists on all of them). */
const samples = {
  'order.placed': newEvent('order.placed', ids.order, {
    orderId: ids.order,
    customerId: ids.customer,
    total: money,
    status: 'PENDING_PAYMENT',
  }),
  'order.status_changed': newEvent('order.status_changed', ids.order, {
    orderId: ids.order,
    customerId: ids.customer,
    from: 'PAID',
    to: 'ACCEPTED',
    version: 2,
    final: false,
    actor: { kind: 'user', id: 'chef' },
    reason: null,
  }),
  'order.refund_requested': newEvent('order.refund_requested', ids.order, {
    orderId: ids.order,
    paymentId: null,
    reason: 'cancelled',
  }),
  'payment.succeeded': newEvent('payment.succeeded', ids.payment, {
    paymentId: ids.payment,
    orderId: ids.order,
    amount: money,
  }),
  'payment.failed': newEvent('payment.failed', ids.payment, {
    paymentId: ids.payment,
    orderId: ids.order,
    outcome: 'DECLINED',
    reason: 'card declined',
  }),
  'payment.refunded': newEvent('payment.refunded', ids.payment, {
    paymentId: ids.payment,
    orderId: ids.order,
    amount: money,
  }),
  'meal.availability_changed': newEvent('meal.availability_changed', ids.meal, {
    mealId: ids.meal,
    available: false,
    price: money,
    version: 3,
  }),
  'session.revoked': newEvent('session.revoked', ids.payment, {
    sessionId: ids.payment,
    userId: ids.customer,
    reason: 'logout',
    tokensExpireAt: new Date().toISOString(),
  }),
} satisfies Record<EventType, DomainEvent>;

describe('event definitions', () => {
  it.each(eventTypes)('%s keys every entity it changes by a string field of its data', (type) => {
    const { changes, data } = eventDefinitions[type];
    expect(Array.isArray(changes)).toBe(true);
    for (const { key } of changes) {
      expect(eventDataFields(type)).toContain(key.id);
      const field = (data.shape as Record<string, z.ZodType>)[key.id]!;
      expect(field.safeParse(randomUUID()).success).toBe(true);
      expect(field.safeParse(null).success).toBe(false);
    }
  });

  it('names the entities each event type changes, by the subgraph whose fields they are', () => {
    const order = { __typename: 'Order', id: ids.order };
    const byOrders = [{ subgraph: 'orders', entities: [order, { __typename: 'User', id: ids.customer }] }];
    const byPayments = [{ subgraph: 'payments', entities: [order, { __typename: 'Payment', id: ids.payment }] }];
    const expected = {
      'order.placed': byOrders,
      'order.status_changed': byOrders,
      'order.refund_requested': [],
      'payment.succeeded': byPayments,
      'payment.failed': byPayments,
      'payment.refunded': byPayments,
      'meal.availability_changed': [{ subgraph: 'meals', entities: [{ __typename: 'Meal', id: ids.meal }] }],
      'session.revoked': [],
    } satisfies Record<EventType, unknown>;
    for (const type of eventTypes) expect(changedEntitiesOf(samples[type]), type).toEqual(expected[type]);
  });

  it('puts each event type on the stream it declares', () => {
    expect(eventTypes.map((type) => [type, streamOf(type)])).toEqual([
      ['order.placed', 'orders'],
      ['order.status_changed', 'orders'],
      ['order.refund_requested', 'orders'],
      ['payment.succeeded', 'payments'],
      ['payment.failed', 'payments'],
      ['payment.refunded', 'payments'],
      ['meal.availability_changed', 'meals'],
      ['session.revoked', 'sessions'],
    ]);
  });

  it("lists an event type's data fields", () => {
    expect(eventDataFields('payment.succeeded')).toEqual(['paymentId', 'orderId', 'amount']);
  });

  it('parses every event type it defines, and refuses an unknown one', () => {
    for (const type of eventTypes) expect(parseEvent(JSON.parse(JSON.stringify(samples[type])))).toEqual(samples[type]);
    expect(() => parseEvent({ ...samples['payment.failed'], type: 'payment.lost' })).toThrow('invalid event');
  });
});
