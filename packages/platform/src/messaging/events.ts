import { randomUUID } from 'node:crypto';
import { z } from 'zod';

/**
 * Every event that crosses a service boundary, defined once. Producers build them with `newEvent`
 * (validated before they are written), consumers read them with `parseEvent` (validated again, so a
 * malformed or unknown event is refused loudly rather than half-handled). A breaking change to a
 * payload is a new `version`, not an edit of the old one.
 */

/** Order statuses as events carry them (the orders domain owns the rules; this is only the wire). */
export const ZOrderStatus = z.enum([
  'PENDING_PAYMENT',
  'PAYMENT_FAILED',
  'PAID',
  'ACCEPTED',
  'PREPARING',
  'READY',
  'OUT_FOR_DELIVERY',
  'DELIVERED',
  'CANCELLED',
  'REFUND_PENDING',
  'REFUNDED',
]);

const ZMoney = z.object({ amount: z.number().int(), currency: z.string().length(3) });
/** Who made a change: a user (customer or staff) or the system (a worker, an event handler). */
const ZActor = z.object({ kind: z.enum(['user', 'system']), id: z.string().min(1).max(100) });

const envelope = <T extends string, D extends z.ZodType>(type: T, data: D) =>
  z.object({
    /** Unique per event; consumers remember it to ignore redeliveries. */
    id: z.uuid(),
    type: z.literal(type),
    version: z.literal(1),
    /** The entity the event is about; events of one aggregate are delivered in order. */
    aggregateId: z.uuid(),
    occurredAt: z.iso.datetime(),
    data,
  });

export const OrderEvents = {
  'order.placed': envelope(
    'order.placed',
    z.object({ orderId: z.uuid(), customerId: z.uuid(), total: ZMoney, status: ZOrderStatus }),
  ),
  'order.status_changed': envelope(
    'order.status_changed',
    z.object({
      orderId: z.uuid(),
      customerId: z.uuid(),
      from: ZOrderStatus,
      to: ZOrderStatus,
      /** The order's version after the change: consumers use it to drop stale or repeated changes. */
      version: z.number().int().positive(),
      /** True when `to` is final: nothing follows it. */
      final: z.boolean(),
      actor: ZActor,
      reason: z.string().max(500).nullable(),
    }),
  ),
  /**
   * Money must go back: a paid order was cancelled (paymentId null: refund the order's successful
   * payment), or a payment succeeded for an order that can no longer take it (that payment).
   */
  'order.refund_requested': envelope(
    'order.refund_requested',
    z.object({ orderId: z.uuid(), paymentId: z.uuid().nullable(), reason: z.string().max(500) }),
  ),
};

export const PaymentEvents = {
  'payment.succeeded': envelope(
    'payment.succeeded',
    z.object({ paymentId: z.uuid(), orderId: z.uuid(), amount: ZMoney }),
  ),
  'payment.failed': envelope(
    'payment.failed',
    z.object({
      paymentId: z.uuid(),
      orderId: z.uuid(),
      outcome: z.enum(['DECLINED', 'FAILED']),
      reason: z.string().max(500),
    }),
  ),
  'payment.refunded': envelope(
    'payment.refunded',
    z.object({ paymentId: z.uuid(), orderId: z.uuid(), amount: ZMoney }),
  ),
};

const eventSchemas = { ...OrderEvents, ...PaymentEvents };
export type EventType = keyof typeof eventSchemas;
export type EventOf<T extends EventType> = z.infer<(typeof eventSchemas)[T]>;
export type DomainEvent = { [T in EventType]: EventOf<T> }[EventType];
export const ZDomainEvent = z.discriminatedUnion('type', [
  OrderEvents['order.placed'],
  OrderEvents['order.status_changed'],
  OrderEvents['order.refund_requested'],
  PaymentEvents['payment.succeeded'],
  PaymentEvents['payment.failed'],
  PaymentEvents['payment.refunded'],
]);

/** The Redis stream (and outbox `stream` column) each event type is published on. */
export const EventStreams = {
  orders: 'orders',
  payments: 'payments',
} as const;
export type EventStream = (typeof EventStreams)[keyof typeof EventStreams];
export const streamOf = (type: EventType): EventStream =>
  type.startsWith('order.') ? EventStreams.orders : EventStreams.payments;

/** Builds and validates an event; throws on a payload that does not match its schema. */
export function newEvent<T extends EventType>(
  type: T,
  aggregateId: string,
  data: EventOf<T>['data'],
  occurredAt: Date = new Date(),
): EventOf<T> {
  const event = { id: randomUUID(), type, version: 1, aggregateId, occurredAt: occurredAt.toISOString(), data };
  return eventSchemas[type].parse(event) as EventOf<T>;
}

export class InvalidEventError extends Error {
  override name = 'InvalidEventError';
}

/** Validates an incoming event; an unknown type, version or shape is an InvalidEventError. */
export function parseEvent(raw: unknown): DomainEvent {
  const result = ZDomainEvent.safeParse(raw);
  if (!result.success) {
    throw new InvalidEventError(
      `invalid event: ${result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  return result.data;
}

/** The id and type of a raw entry, as far as it can be read (for log lines and dead letters). */
export function describeRawEvent(raw: string): { eventId: string | null; eventType: string | null } {
  try {
    const value = JSON.parse(raw) as { id?: unknown; type?: unknown };
    return {
      eventId: typeof value?.id === 'string' ? value.id : null,
      eventType: typeof value?.type === 'string' ? value.type : null,
    };
  } catch {
    return { eventId: null, eventType: null };
  }
}
