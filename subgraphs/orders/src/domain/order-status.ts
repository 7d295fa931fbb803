import { DomainError, ErrorCode, ZOrderStatus } from '@food/platform';

/** Every status an order can have: the one list, shared with the events that carry it. */
export const ORDER_STATUSES = ZOrderStatus.options;

export type OrderStatus = (typeof ORDER_STATUSES)[number];

/** Who asks for a change. Customers act on their own orders only; that check is the service's. */
export type OrderActor = 'CUSTOMER' | 'STAFF' | 'SYSTEM';

/** Every order starts here. */
export const INITIAL_ORDER_STATUS: OrderStatus = 'PENDING_PAYMENT';

/**
 * The order lifecycle: every allowed move and who may make it. Anything not listed is refused.
 *
 *   PENDING_PAYMENT -> PAID -> ACCEPTED -> PREPARING -> READY -> OUT_FOR_DELIVERY -> DELIVERED
 *          |  \-> PAYMENT_FAILED -> (PAID on a later payment)
 *          \-> CANCELLED                    a paid order cancelled -> REFUND_PENDING -> REFUNDED
 *
 * Payment outcomes and refunds are SYSTEM moves (driven by payments' events); the kitchen's flow is
 * STAFF; a customer may only cancel, and only before the kitchen has accepted.
 */
const TRANSITIONS: Record<OrderStatus, Partial<Record<OrderStatus, readonly OrderActor[]>>> = {
  PENDING_PAYMENT: {
    PAID: ['SYSTEM'],
    PAYMENT_FAILED: ['SYSTEM'],
    CANCELLED: ['CUSTOMER', 'STAFF', 'SYSTEM'],
  },
  PAYMENT_FAILED: {
    PAID: ['SYSTEM'],
    CANCELLED: ['CUSTOMER', 'STAFF', 'SYSTEM'],
  },
  PAID: {
    ACCEPTED: ['STAFF'],
    REFUND_PENDING: ['CUSTOMER', 'STAFF'],
  },
  ACCEPTED: {
    PREPARING: ['STAFF'],
    REFUND_PENDING: ['STAFF'],
  },
  PREPARING: {
    READY: ['STAFF'],
    REFUND_PENDING: ['STAFF'],
  },
  READY: {
    OUT_FOR_DELIVERY: ['STAFF'],
    REFUND_PENDING: ['STAFF'],
  },
  OUT_FOR_DELIVERY: {
    DELIVERED: ['STAFF'],
  },
  REFUND_PENDING: {
    REFUNDED: ['SYSTEM'],
  },
  DELIVERED: {},
  CANCELLED: {},
  REFUNDED: {},
};

/** The one place the lifecycle's rules are decided. Pure: no GraphQL, no database. */
export const OrderStatusMachine = {
  /** Final statuses: nothing follows them, so live tracking ends there. */
  isFinal(status: OrderStatus): boolean {
    return Object.keys(TRANSITIONS[status]).length === 0;
  },

  /** Whether the lifecycle has a move from `from` to `to` at all, whoever asks. */
  exists(from: OrderStatus, to: OrderStatus): boolean {
    return TRANSITIONS[from][to] !== undefined;
  },

  /** Whether `actor` may move an order from `from` to `to`. */
  allows(from: OrderStatus, to: OrderStatus, actor: OrderActor): boolean {
    return TRANSITIONS[from][to]?.includes(actor) ?? false;
  },

  /**
   * Where cancelling leads from `from`: CANCELLED before payment, REFUND_PENDING after it (the refund
   * follows), or null when the order can no longer be cancelled.
   */
  cancellationTarget(from: OrderStatus): OrderStatus | null {
    if (TRANSITIONS[from].CANCELLED) return 'CANCELLED';
    if (TRANSITIONS[from].REFUND_PENDING) return 'REFUND_PENDING';
    return null;
  },

  /** Throws a typed error naming both statuses unless `actor` may make the move. */
  assertAllowed(from: OrderStatus, to: OrderStatus, actor: OrderActor): void {
    if (OrderStatusMachine.allows(from, to, actor)) return;
    if (OrderStatusMachine.exists(from, to)) {
      throw new DomainError(ErrorCode.FORBIDDEN, `Moving an order from ${from} to ${to} is not yours to do`, {
        currentStatus: from,
        requestedStatus: to,
      });
    }
    throw new DomainError(ErrorCode.INVALID_STATUS_TRANSITION, `An order cannot move from ${from} to ${to}`, {
      currentStatus: from,
      requestedStatus: to,
    });
  },

  /** Every (from, to, actors) move, for tests and documentation. */
  moves(): { from: OrderStatus; to: OrderStatus; actors: readonly OrderActor[] }[] {
    return ORDER_STATUSES.flatMap((from) =>
      Object.entries(TRANSITIONS[from]).map(([to, actors]) => ({ from, to: to as OrderStatus, actors: actors! })),
    );
  },
};
