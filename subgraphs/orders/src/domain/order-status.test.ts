import { describe, expect, it } from 'vitest';
import { DomainError } from '@food/platform';
import { ORDER_STATUSES, OrderStatusMachine, type OrderActor, type OrderStatus } from './order-status.js';

const ACTORS: OrderActor[] = ['CUSTOMER', 'STAFF', 'SYSTEM'];

/** The lifecycle as the product defines it, written out independently of the machine's table. */
const ALLOWED: [OrderStatus, OrderStatus, OrderActor[]][] = [
  ['PENDING_PAYMENT', 'PAID', ['SYSTEM']],
  ['PENDING_PAYMENT', 'PAYMENT_FAILED', ['SYSTEM']],
  ['PENDING_PAYMENT', 'CANCELLED', ['CUSTOMER', 'STAFF', 'SYSTEM']],
  ['PAYMENT_FAILED', 'PAID', ['SYSTEM']],
  ['PAYMENT_FAILED', 'CANCELLED', ['CUSTOMER', 'STAFF', 'SYSTEM']],
  ['PAID', 'ACCEPTED', ['STAFF']],
  ['PAID', 'REFUND_PENDING', ['CUSTOMER', 'STAFF']],
  ['ACCEPTED', 'PREPARING', ['STAFF']],
  ['ACCEPTED', 'REFUND_PENDING', ['STAFF']],
  ['PREPARING', 'READY', ['STAFF']],
  ['PREPARING', 'REFUND_PENDING', ['STAFF']],
  ['READY', 'OUT_FOR_DELIVERY', ['STAFF']],
  ['READY', 'REFUND_PENDING', ['STAFF']],
  ['OUT_FOR_DELIVERY', 'DELIVERED', ['STAFF']],
  ['REFUND_PENDING', 'REFUNDED', ['SYSTEM']],
];

const allowedActors = (from: OrderStatus, to: OrderStatus) =>
  ALLOWED.find(([f, t]) => f === from && t === to)?.[2] ?? [];

const everyCase = ORDER_STATUSES.flatMap((from) =>
  ORDER_STATUSES.flatMap((to) => ACTORS.map((actor) => ({ from, to, actor }))),
);

function refusal(from: OrderStatus, to: OrderStatus, actor: OrderActor) {
  try {
    OrderStatusMachine.assertAllowed(from, to, actor);
    return null;
  } catch (error) {
    if (!(error instanceof DomainError)) throw error;
    return error;
  }
}

describe('OrderStatusMachine', () => {
  it.each(everyCase.filter(({ from, to, actor }) => allowedActors(from, to).includes(actor)))(
    'allows $actor to move $from -> $to',
    ({ from, to, actor }) => {
      expect(OrderStatusMachine.allows(from, to, actor)).toBe(true);
      expect(refusal(from, to, actor)).toBeNull();
    },
  );

  it.each(everyCase.filter(({ from, to }) => allowedActors(from, to).length === 0))(
    'refuses $from -> $to for $actor as an invalid transition naming both statuses',
    ({ from, to, actor }) => {
      const error = refusal(from, to, actor);
      expect(error?.code).toBe('INVALID_STATUS_TRANSITION');
      expect(error?.message).toContain(from);
      expect(error?.message).toContain(to);
      expect(error?.details).toEqual({ currentStatus: from, requestedStatus: to });
    },
  );

  it.each(
    everyCase.filter(
      ({ from, to, actor }) => allowedActors(from, to).length > 0 && !allowedActors(from, to).includes(actor),
    ),
  )('refuses $actor moving $from -> $to as forbidden (the move exists, not for them)', ({ from, to, actor }) => {
    expect(refusal(from, to, actor)?.code).toBe('FORBIDDEN');
  });

  it('lists exactly the moves of the product lifecycle', () => {
    const moves = OrderStatusMachine.moves().map(({ from, to, actors }) => [from, to, [...actors].sort()]);
    expect(moves.sort()).toEqual(ALLOWED.map(([from, to, actors]) => [from, to, [...actors].sort()]).sort());
  });

  it('has exactly DELIVERED, CANCELLED and REFUNDED as final statuses', () => {
    expect(ORDER_STATUSES.filter((status) => OrderStatusMachine.isFinal(status)).sort()).toEqual(
      ['CANCELLED', 'DELIVERED', 'REFUNDED'].sort(),
    );
  });

  it.each([
    ['PENDING_PAYMENT', 'CANCELLED'],
    ['PAYMENT_FAILED', 'CANCELLED'],
    ['PAID', 'REFUND_PENDING'],
    ['ACCEPTED', 'REFUND_PENDING'],
    ['PREPARING', 'REFUND_PENDING'],
    ['READY', 'REFUND_PENDING'],
    ['OUT_FOR_DELIVERY', null],
    ['DELIVERED', null],
    ['CANCELLED', null],
    ['REFUND_PENDING', null],
    ['REFUNDED', null],
  ] as const)('cancelling from %s leads to %s', (from, target) => {
    expect(OrderStatusMachine.cancellationTarget(from)).toBe(target);
  });
});
