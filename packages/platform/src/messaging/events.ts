import { newId } from '../ids.js';
import { z } from 'zod';
import type { EntityReference } from '../changed-entities.js';

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

/** The Redis stream (and outbox `stream` column) each event type is published on. */
export const EventStreams = {
  orders: 'orders',
  payments: 'payments',
  meals: 'meals',
  sessions: 'sessions',
} as const;
export type EventStream = (typeof EventStreams)[keyof typeof EventStreams];

/** The names of a data schema's fields that hold a string (the only kind of field a key can be). */
type StringField<D extends z.ZodObject> = {
  [K in keyof z.infer<D>]: z.infer<D>[K] extends string ? K : never;
}[keyof z.infer<D>] &
  string;

/**
 * A federated entity an event changes: which subgraph's fields of it, of which type, and which field
 * of the event's data holds its `@key(fields: "id")`. Whoever caches those fields drops them on the event.
 */
export interface EntityChange<Field extends string = string> {
  subgraph: string;
  type: string;
  key: { id: Field };
}

/** One event type: its envelope's schema, its data's schema, its stream and what it changes. */
export interface EventDefinition<T extends string = string, D extends z.ZodObject = z.ZodObject> {
  schema: ReturnType<typeof envelope<T, D>>;
  data: D;
  stream: EventStream;
  changes: readonly EntityChange<StringField<D>>[];
}

const envelope = <T extends string, D extends z.ZodObject>(type: T, data: D) =>
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

const defineEvent = <T extends string, D extends z.ZodObject>(
  type: T,
  data: D,
  { stream, changes }: Pick<EventDefinition<T, D>, 'stream' | 'changes'>,
): EventDefinition<T, D> => ({ schema: envelope(type, data), data, stream, changes });

/** The order itself, and its customer's `User.orders` list. */
const orderChanges = [
  { subgraph: 'orders', type: 'Order', key: { id: 'orderId' } },
  { subgraph: 'orders', type: 'User', key: { id: 'customerId' } },
] as const;
/** `Order.payment` and `Order.payments`, and the payment itself. */
const paymentChanges = [
  { subgraph: 'payments', type: 'Order', key: { id: 'orderId' } },
  { subgraph: 'payments', type: 'Payment', key: { id: 'paymentId' } },
] as const;

/**
 * Every event type: its data, its stream and the entities it changes. The one source: the types,
 * the parsers and the lookups below derive from it. A change names the subgraph whose fields of the
 * entity the event changes, not every subgraph that has the type.
 */
export const eventDefinitions = {
  'order.placed': defineEvent(
    'order.placed',
    z.object({ orderId: z.uuid(), customerId: z.uuid(), total: ZMoney, status: ZOrderStatus }),
    { stream: EventStreams.orders, changes: orderChanges },
  ),
  'order.status_changed': defineEvent(
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
    { stream: EventStreams.orders, changes: orderChanges },
  ),
  /**
   * Money must go back: a paid order was cancelled (paymentId null: refund the order's successful
   * payment), or a payment succeeded for an order that can no longer take it (that payment).
   */
  'order.refund_requested': defineEvent(
    'order.refund_requested',
    z.object({ orderId: z.uuid(), paymentId: z.uuid().nullable(), reason: z.string().max(500) }),
    // Only asks: what changes is announced by the status change and the refund's own events.
    { stream: EventStreams.orders, changes: [] },
  ),
  'payment.succeeded': defineEvent(
    'payment.succeeded',
    z.object({ paymentId: z.uuid(), orderId: z.uuid(), amount: ZMoney }),
    { stream: EventStreams.payments, changes: paymentChanges },
  ),
  'payment.failed': defineEvent(
    'payment.failed',
    z.object({
      paymentId: z.uuid(),
      orderId: z.uuid(),
      outcome: z.enum(['DECLINED', 'FAILED']),
      reason: z.string().max(500),
    }),
    { stream: EventStreams.payments, changes: paymentChanges },
  ),
  'payment.refunded': defineEvent(
    'payment.refunded',
    z.object({ paymentId: z.uuid(), orderId: z.uuid(), amount: ZMoney }),
    { stream: EventStreams.payments, changes: paymentChanges },
  ),
  /**
   * A meal's availability or price changed (at least one of them): both as they are after the
   * change, so a subscriber's result shows it without reading a later state.
   */
  'meal.availability_changed': defineEvent(
    'meal.availability_changed',
    z.object({
      mealId: z.uuid(),
      available: z.boolean(),
      /** The price of one portion, as `Meal.price` has it. */
      price: ZMoney,
      /** The meal's version after the change: consumers use it to drop stale or repeated changes. */
      version: z.number().int().positive(),
    }),
    { stream: EventStreams.meals, changes: [{ subgraph: 'meals', type: 'Meal', key: { id: 'mealId' } }] },
  ),
  /**
   * A login ended before its tokens did (log-out, password or role change, a refresh token used
   * twice): every gateway refuses its access tokens and closes its subscriptions until
   * `tokensExpireAt`, when the last access token it issued expires anyway.
   */
  'session.revoked': defineEvent(
    'session.revoked',
    z.object({
      sessionId: z.uuid(),
      userId: z.uuid(),
      reason: z.enum(['logout', 'password_changed', 'role_changed', 'refresh_token_reused']),
      tokensExpireAt: z.iso.datetime(),
    }),
    { stream: EventStreams.sessions, changes: [] },
  ),
};

type EventDefinitions = typeof eventDefinitions;
export type EventType = keyof EventDefinitions;
export type EventOf<T extends EventType> = z.infer<EventDefinitions[T]['schema']>;
export type DomainEvent = { [T in EventType]: EventOf<T> }[EventType];
export const eventTypes = Object.keys(eventDefinitions) as EventType[];

type EventSchema = EventDefinitions[EventType]['schema'];
export const ZDomainEvent = z.discriminatedUnion(
  'type',
  eventTypes.map((type) => eventDefinitions[type].schema) as [EventSchema, ...EventSchema[]],
);

export const streamOf = (type: EventType): EventStream => eventDefinitions[type].stream;

/** The names of an event type's data fields, as its schema declares them. */
export const eventDataFields = (type: EventType): string[] => Object.keys(eventDefinitions[type].data.shape);

/** The entities an event changes, by the subgraph whose fields of them it changes (as declared above). */
export function changedEntitiesOf(event: DomainEvent): { subgraph: string; entities: EntityReference[] }[] {
  const changes: readonly EntityChange[] = eventDefinitions[event.type].changes;
  const data = event.data as Record<string, unknown>;
  const bySubgraph = new Map<string, EntityReference[]>();
  for (const { subgraph, type, key } of changes) {
    const entities = bySubgraph.get(subgraph) ?? [];
    entities.push({ __typename: type, id: data[key.id] as string });
    bySubgraph.set(subgraph, entities);
  }
  return [...bySubgraph].map(([subgraph, entities]) => ({ subgraph, entities }));
}

/** Builds and validates an event; throws on a payload that does not match its schema. */
export function newEvent<T extends EventType>(
  type: T,
  aggregateId: string,
  data: EventOf<T>['data'],
  occurredAt: Date = new Date(),
): EventOf<T> {
  const event = { id: newId(), type, version: 1, aggregateId, occurredAt: occurredAt.toISOString(), data };
  return eventDefinitions[type].schema.parse(event) as EventOf<T>;
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
