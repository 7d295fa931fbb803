import { z } from 'zod';
import {
  badInput,
  decodeCursor,
  decodeKeysetCursor,
  DomainError,
  encodeKeysetCursor,
  ErrorCode,
  forbidden,
  idempotencyKeyReused,
  isStaff,
  newEvent,
  newId,
  notFound,
  pageSize,
  parseInput,
  requestFingerprint,
  requireStaff,
  requireUser,
  toConnection,
  unauthenticated,
  ZIdempotencyKey,
  type Caller,
  type DomainEvent,
} from '@food/platform';
import {
  INITIAL_ORDER_STATUS,
  ORDER_STATUSES,
  OrderStatusMachine,
  type OrderActor,
  type OrderStatus,
} from './order-status.js';
import { priceOrder, type MenuMeal, type Money, type PricedLine } from './pricing.js';

/** An order as the domain sees it: amounts already paired with the order's currency. */
export interface Order {
  id: string;
  customerId: string;
  status: OrderStatus;
  subtotal: Money;
  deliveryFee: Money;
  total: Money;
  deliveryAddress: string;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

export interface OrderItemAddon {
  addonId: string;
  name: string;
  unitPrice: Money;
  quantity: number;
}

export interface OrderItem {
  id: string;
  mealId: string;
  mealName: string;
  unitPrice: Money;
  quantity: number;
  addons: OrderItemAddon[];
  lineTotal: Money;
}

export interface OrderStatusChange {
  from: OrderStatus | null;
  to: OrderStatus;
  at: Date;
  actor: OrderActor;
  reason: string | null;
  /** A user id, or a service name for system transitions. */
  changedBy: string;
}

/** A stored line: amounts without currency (the order holds it), addons included. */
export interface StoredOrderItem {
  id: string;
  orderId: string;
  mealId: string;
  mealName: string;
  unitPriceAmount: number;
  quantity: number;
  lineTotalAmount: number;
  addons: { addonId: string; name: string; unitPriceAmount: number; quantity: number }[];
}

export interface StoredStatusChange extends OrderStatusChange {
  orderId: string;
}

export interface NewOrder {
  id: string;
  customerId: string;
  currency: string;
  subtotalAmount: number;
  deliveryFeeAmount: number;
  totalAmount: number;
  deliveryAddress: string;
  status: OrderStatus;
  /** In the order given; stored with their position. */
  lines: PricedLine[];
  changedBy: string;
  /** Written to the outbox in the same transaction. */
  events: DomainEvent[];
  /** The customer's idempotency key, taken in the same transaction (or not at all). */
  idempotency: { key: string; requestHash: string };
}

export type CreateResult =
  | { outcome: 'created'; order: Order }
  /** The customer's idempotency key was taken (by a concurrent twin, committed): nothing was written. */
  | { outcome: 'key_taken' };

/** An order placed under an idempotency key, with the fingerprint of the request that placed it. */
export interface PlacedByKey {
  requestHash: string;
  /** Null only if the order was removed since (keys outlive no order in practice: see retention). */
  order: Order | null;
}

/** A place in the kitchen's queue: the status an order was in when read, when it was placed, its id. */
export interface QueuePosition {
  status: OrderStatus;
  createdAt: Date;
  id: string;
}

/** One status change, applied only if the order is still at `expectedVersion`. */
export interface StatusTransition {
  orderId: string;
  expectedVersion: number;
  from: OrderStatus;
  to: OrderStatus;
  actor: OrderActor;
  changedBy: string;
  reason: string | null;
  /** Written to the outbox in the same transaction as the change. */
  events: DomainEvent[];
  /** When the change handles an event: remembered in the same transaction, so a redelivery is a no-op. */
  handledEvent?: HandledEvent;
}

export interface HandledEvent {
  consumer: string;
  eventId: string;
}

export type TransitionResult =
  | { outcome: 'applied'; order: Order }
  | { outcome: 'conflict' }
  /** `handledEvent` was handled before: nothing was written. */
  | { outcome: 'duplicate' };

/** The persistence the orders domain needs; implemented over Prisma in ../data. */
export interface OrdersStore {
  /**
   * Takes the idempotency key, then writes the order, its lines, their add-ons, the first status change
   * and the events, all or nothing. A key already taken (a concurrent twin's insert makes this one wait
   * until the twin commits) writes nothing: `key_taken`.
   */
  create(order: NewOrder): Promise<CreateResult>;
  /** The order a customer placed with this key, and that request's fingerprint; null if the key is unused. */
  findByIdempotencyKey(customerId: string, key: string): Promise<PlacedByKey | null>;
  /** Forgets up to `limit` idempotency keys taken before `before`, oldest first. Returns how many. */
  deleteIdempotencyKeys(before: Date, limit: number): Promise<number>;
  findByIds(ids: readonly string[]): Promise<Order[]>;
  /** A customer's orders newest first (createdAt desc, id desc), strictly after `after` when given. */
  pageOfCustomer(customerId: string, take: number, after: Pick<Order, 'id' | 'createdAt'> | null): Promise<Order[]>;
  /** Lines of the given orders, each order's in position order. */
  findItems(orderIds: readonly string[]): Promise<StoredOrderItem[]>;
  /** Status changes of the given orders, oldest first. */
  findStatusChanges(orderIds: readonly string[]): Promise<StoredStatusChange[]>;
  /**
   * Applies a change as one transaction: the order's status and version (a conditional update on
   * `expectedVersion`: a concurrent change makes it a conflict and nothing is written), the history
   * entry, the outbox events and the handled-event marker.
   */
  transition(change: StatusTransition): Promise<TransitionResult>;
  /** Remembers a handled event that changes no order (and writes its follow-up events), atomically. */
  recordHandled(handled: HandledEvent, events: DomainEvent[]): Promise<'recorded' | 'duplicate'>;
  /** Orders in one of `statuses` placed before `before`, oldest first, at most `limit`. */
  findStale(statuses: readonly OrderStatus[], before: Date, limit: number): Promise<Order[]>;
  /**
   * At most `take` orders in `statuses`: all of the first status's, then the next's, each status's
   * oldest first (createdAt, id), starting strictly after `after` (whose status is one of them).
   */
  pageOfStatuses(statuses: readonly OrderStatus[], take: number, after: QueuePosition | null): Promise<Order[]>;
  /** How many orders are in each of `statuses` (absent: none). */
  countByStatus(statuses: readonly OrderStatus[]): Promise<Map<OrderStatus, number>>;
}

/** The port to the meals service (never its database): meals by id, absent when unknown. */
export interface MealCatalog {
  findMeals(ids: readonly string[]): Promise<Map<string, MenuMeal>>;
}

const ZUuid = z.uuid({ error: 'must be a UUID' });
const ZAddon = z.object({
  addonId: ZUuid,
  quantity: z.number().int('must be a whole number').min(1, 'must be at least 1'),
});
const ZLine = z.object({
  mealId: ZUuid,
  quantity: z.number().int('must be a whole number').min(1, 'must be at least 1').max(50, 'must be at most 50'),
  addons: z
    .array(ZAddon)
    .nullish()
    .transform((addons) => addons ?? [])
    .superRefine((addons, ctx) => {
      const seen = new Set<string>();
      addons.forEach((addon, index) => {
        if (seen.has(addon.addonId)) {
          ctx.addIssue({ code: 'custom', path: [index, 'addonId'], message: 'must not repeat an add-on of the line' });
        }
        seen.add(addon.addonId);
      });
    }),
});
export const ZPlaceOrderInput = z.object({
  items: z.array(ZLine).min(1, 'must have at least 1 item').max(50, 'must have at most 50 items'),
  deliveryAddress: z.string().trim().min(5, 'must be at least 5 characters').max(500, 'must be at most 500 characters'),
  idempotencyKey: ZIdempotencyKey,
});
type TPlaceOrderInput = z.infer<typeof ZPlaceOrderInput>;

/**
 * What makes two placeOrder requests the same, for their idempotency key: the lines in their order,
 * each line's add-ons in any order, and the address as stored (trimmed); ids in lower case. Salted with
 * the customer and the key, so equal requests of different customers (or keys) never share a hash.
 */
export function placeOrderFingerprint(
  customerId: string,
  { idempotencyKey, items, deliveryAddress }: TPlaceOrderInput,
) {
  const lines = items.map((item) => ({
    mealId: item.mealId.toLowerCase(),
    quantity: item.quantity,
    addons: item.addons
      .map((addon) => ({ addonId: addon.addonId.toLowerCase(), quantity: addon.quantity }))
      .sort((a, b) => (a.addonId < b.addonId ? -1 : a.addonId > b.addonId ? 1 : 0)),
  }));
  return requestFingerprint(customerId, idempotencyKey, JSON.stringify({ lines, deliveryAddress }));
}

/** The statuses the kitchen's queue takes: those an order is still in progress in, not the final ones. */
export const QUEUE_STATUSES = ORDER_STATUSES.filter((status) => !OrderStatusMachine.isFinal(status));
const ZQueueStatuses = z
  .array(z.enum(ORDER_STATUSES, { error: 'must be order statuses' }))
  .min(1, 'must name at least 1 status')
  .superRefine((statuses, ctx) => {
    statuses.forEach((status, index) => {
      if (OrderStatusMachine.isFinal(status)) {
        ctx.addIssue({
          code: 'custom',
          path: [index],
          message: `must be statuses still in progress (${QUEUE_STATUSES.join(', ')}): ${status} is final`,
        });
      } else if (statuses.indexOf(status) !== index) {
        ctx.addIssue({ code: 'custom', path: [index], message: `must not repeat a status (${status})` });
      }
    });
  });
const ZQueueArgs = z.object({ statuses: ZQueueStatuses });
/** A queue cursor: [status, placed at (ISO), id]. */
const ZQueueCursor = z
  .tuple([z.enum(ORDER_STATUSES), z.iso.datetime(), ZUuid])
  .transform(([status, at, id]): QueuePosition => ({ status, createdAt: new Date(at), id }));
const queueCursor = (order: Order) => encodeKeysetCursor([order.status, order.createdAt.toISOString(), order.id]);
const QUEUE_PAGE = { fallback: 20, max: 50 };

const ZReason = z.string().trim().max(500, 'must be at most 500 characters').nullish();
const ZExpectedVersion = z.number().int('must be a whole number').positive('must be positive').nullish();
const ZChangeOrderStatusInput = z.object({
  orderId: ZUuid,
  status: z.enum(ORDER_STATUSES, { error: 'must be an order status' }),
  expectedVersion: ZExpectedVersion,
  reason: ZReason,
});
const ZCancelOrderInput = z.object({ orderId: ZUuid, expectedVersion: ZExpectedVersion, reason: ZReason });

const PAGE = { fallback: 10, max: 50 };

/** The consumer name under which orders remembers the payment events it handled. */
export const PAYMENT_EVENTS_CONSUMER = 'orders';
const SYSTEM = 'orders';

export interface OrdersOptions {
  /** Flat delivery charge in minor units of the menu's currency. */
  deliveryFeeAmount: number;
}

/** Placing and reading orders: every rule about orders lives here. */
export class OrdersService {
  constructor(
    private readonly store: OrdersStore,
    private readonly meals: MealCatalog,
    private readonly options: OrdersOptions,
  ) {}

  /**
   * Places an order once per idempotency key: a repeat of the request (a retry, a double click, a
   * concurrent twin) gets the order the first placed, without a second order or event; the key with
   * another request is refused. The key is taken in the order's own transaction.
   */
  async placeOrder(caller: Caller, input: unknown): Promise<Order> {
    const { userId } = requireUser(caller);
    const data = parseInput(ZPlaceOrderInput, input);
    const requestHash = placeOrderFingerprint(userId, data);
    // A repeat is answered before anything else: not priced again (a meal sold out since would refuse it).
    const earlier = await this.store.findByIdempotencyKey(userId, data.idempotencyKey);
    if (earlier) return replayPlaced(earlier, requestHash);
    // One call for the whole order, so a large order is not N round trips to meals.
    const menu = await this.meals.findMeals([...new Set(data.items.map((item) => item.mealId))]);
    const priced = priceOrder(data.items, menu, this.options.deliveryFeeAmount);
    // A UUIDv7: the orders database is partitioned by month of the id (see data/partitions.ts).
    const id = newId();
    const result = await this.store.create({
      id,
      customerId: userId,
      currency: priced.currency,
      subtotalAmount: priced.subtotalAmount,
      deliveryFeeAmount: priced.deliveryFeeAmount,
      totalAmount: priced.totalAmount,
      deliveryAddress: data.deliveryAddress,
      status: INITIAL_ORDER_STATUS,
      lines: priced.lines,
      changedBy: userId,
      events: [
        newEvent('order.placed', id, {
          orderId: id,
          customerId: userId,
          total: { amount: priced.totalAmount, currency: priced.currency },
          status: INITIAL_ORDER_STATUS,
        }),
      ],
      idempotency: { key: data.idempotencyKey, requestHash },
    });
    if (result.outcome === 'created') return result.order;
    // A concurrent twin took the key and committed first: answer with its order, as a repeat would.
    const winner = await this.store.findByIdempotencyKey(userId, data.idempotencyKey);
    if (!winner) throw new Error(`idempotency key of customer ${userId} taken, then not found`);
    return replayPlaced(winner, requestHash);
  }

  /** Forgets idempotency keys taken before `before`, in batches (the worker's retention job). */
  async forgetIdempotencyKeys(before: Date, batch = 1000): Promise<number> {
    let forgotten = 0;
    for (;;) {
      const deleted = await this.store.deleteIdempotencyKeys(before, batch);
      forgotten += deleted;
      if (deleted < batch) return forgotten;
    }
  }

  /**
   * The kitchen's queue (staff): orders in `statuses` (still in progress ones only), grouped by status
   * in the order given, oldest first within each. The cursor is the order's place when read, so an
   * order that moves on between two pages shifts nothing.
   */
  async kitchenQueue(
    caller: Caller,
    statuses: unknown,
    first: number | null | undefined,
    after: string | null | undefined,
  ) {
    requireStaff(caller);
    const wanted = parseInput(ZQueueArgs, { statuses }).statuses;
    const size = pageSize(first, QUEUE_PAGE);
    const anchor = after ? decodeKeysetCursor(after, ZQueueCursor) : null;
    // A cursor from a queue of other statuses is no place in this one.
    if (anchor && !wanted.includes(anchor.status)) throw badInput('Invalid cursor', { argument: 'after' });
    const rows = await this.store.pageOfStatuses(wanted, size + 1, anchor);
    return { ...toConnection(rows, size, queueCursor), statuses: wanted };
  }

  /** How many orders are in each of the queue's statuses, in the order given (staff). */
  async kitchenQueueCounts(caller: Caller, statuses: readonly OrderStatus[]) {
    requireStaff(caller);
    const counts = await this.store.countByStatus(statuses);
    return statuses.map((status) => ({ status, count: counts.get(status) ?? 0 }));
  }

  /** Staff move an order along the kitchen's flow (or to any status the machine lets staff set). */
  async changeOrderStatus(caller: Caller, input: unknown): Promise<Order> {
    requireStaff(caller);
    const { orderId, status, expectedVersion, reason } = parseInput(ZChangeOrderStatusInput, input);
    const order = await this.findOrThrow(orderId);
    const changedBy = caller.kind === 'user' ? caller.userId : caller.kind === 'service' ? caller.service : 'unknown';
    return this.applyOrThrow(order, status, 'STAFF', changedBy, reason ?? null, expectedVersion);
  }

  /**
   * Cancels: before payment the order is CANCELLED; after it, REFUND_PENDING, and a refund is
   * requested in the same transaction (payments refunds, then the order becomes REFUNDED).
   */
  async cancelOrder(caller: Caller, input: unknown): Promise<Order> {
    const { userId } = requireUser(caller);
    const { orderId, expectedVersion, reason } = parseInput(ZCancelOrderInput, input);
    const order = await this.findOrThrow(orderId);
    if (!this.canSee(caller, order)) throw notFound('Order', orderId);
    const actor: OrderActor = isStaff(caller) ? 'STAFF' : 'CUSTOMER';
    const target = OrderStatusMachine.cancellationTarget(order.status);
    if (!target) {
      throw new DomainError(
        ErrorCode.INVALID_STATUS_TRANSITION,
        `An order cannot be cancelled once it is ${order.status}`,
        {
          currentStatus: order.status,
          requestedStatus: 'CANCELLED',
        },
      );
    }
    return this.applyOrThrow(order, target, actor, userId, reason ?? null, expectedVersion);
  }

  /**
   * Handles an event from payments, at least once: the order moves (PAID, PAYMENT_FAILED, REFUNDED)
   * and the event is remembered in the same transaction. A payment that succeeds for an order that
   * can no longer take it (cancelled meanwhile, or paid twice) is sent back with a refund request.
   */
  async handlePaymentEvent(event: DomainEvent): Promise<'applied' | 'ignored' | 'duplicate'> {
    const handled = { consumer: PAYMENT_EVENTS_CONSUMER, eventId: event.id };
    let target: OrderStatus;
    let orderId: string;
    switch (event.type) {
      case 'payment.succeeded':
        [target, orderId] = ['PAID', event.data.orderId];
        break;
      case 'payment.failed':
        [target, orderId] = ['PAYMENT_FAILED', event.data.orderId];
        break;
      case 'payment.refunded':
        [target, orderId] = ['REFUNDED', event.data.orderId];
        break;
      default:
        return 'ignored';
    }
    // A lost race (the order changed between read and write) is retried with a fresh read.
    for (let attempt = 0; attempt < 5; attempt++) {
      const [order] = await this.store.findByIds([orderId]);
      if (!order) {
        return (await this.store.recordHandled(handled, [])) === 'duplicate' ? 'duplicate' : 'ignored';
      }
      if (!OrderStatusMachine.allows(order.status, target, 'SYSTEM')) {
        const refund =
          event.type === 'payment.succeeded'
            ? [
                newEvent('order.refund_requested', order.id, {
                  orderId: order.id,
                  paymentId: event.data.paymentId,
                  reason: `the order was ${order.status} when the payment succeeded`,
                }),
              ]
            : [];
        return (await this.store.recordHandled(handled, refund)) === 'duplicate' ? 'duplicate' : 'ignored';
      }
      const result = await this.store.transition(
        this.transitionOf(order, target, 'SYSTEM', SYSTEM, reasonOf(event), handled),
      );
      if (result.outcome !== 'conflict') return result.outcome;
    }
    throw new DomainError(ErrorCode.CONFLICT, `Order ${orderId} kept changing while handling ${event.type}`);
  }

  /** Cancels orders left unpaid since before `before` (the unpaid-order timeout). Returns how many. */
  async cancelUnpaidOrders(before: Date, limit = 100): Promise<number> {
    const stale = await this.store.findStale(['PENDING_PAYMENT', 'PAYMENT_FAILED'], before, limit);
    let cancelled = 0;
    for (const order of stale) {
      const result = await this.store.transition(
        this.transitionOf(order, 'CANCELLED', 'SYSTEM', SYSTEM, 'not paid in time'),
      );
      // A conflict means the order moved meanwhile (most likely paid): leave it.
      if (result.outcome === 'applied') cancelled++;
    }
    return cancelled;
  }

  async getOrder(caller: Caller, id: unknown): Promise<Order> {
    if (caller.kind === 'anonymous') throw unauthenticated();
    const orderId = parseInput(ZUuid, id);
    const [order] = await this.store.findByIds([orderId]);
    // Someone else's order answers like a missing one, so existence does not leak.
    if (!order || !this.canSee(caller, order)) throw notFound('Order', orderId);
    return order;
  }

  myOrders(caller: Caller, first: number | null | undefined, after: string | null | undefined) {
    const { userId } = requireUser(caller);
    return this.page(userId, first, after);
  }

  ordersOfUser(caller: Caller, userId: string, first: number | null | undefined, after: string | null | undefined) {
    const isSelf = caller.kind === 'user' && caller.userId === userId;
    if (!isSelf && !isStaff(caller)) throw forbidden("Only the user and staff may read a user's orders");
    return this.page(userId, first, after);
  }

  /**
   * Batched look-up for Order references: one store call; null where absent or not visible. An
   * anonymous caller sees no order: refused as such, so a client learns it must log in.
   */
  async byIds(caller: Caller, ids: readonly string[]): Promise<(Order | null)[]> {
    if (caller.kind === 'anonymous') throw unauthenticated();
    const valid = ids.filter((id) => ZUuid.safeParse(id).success);
    const found = new Map(
      (valid.length ? await this.store.findByIds(valid) : [])
        .filter((order) => this.canSee(caller, order))
        .map((order) => [order.id, order]),
    );
    return ids.map((id) => found.get(id) ?? null);
  }

  /** Batched: the lines of each order, in the order given, with their add-ons. */
  async itemsOf(orders: readonly Order[]): Promise<OrderItem[][]> {
    const byOrder = groupBy(await this.store.findItems(orders.map((order) => order.id)), (item) => item.orderId);
    return orders.map((order) => {
      const money = (amount: number): Money => ({ amount, currency: order.total.currency });
      return (byOrder.get(order.id) ?? []).map((item) => ({
        id: item.id,
        mealId: item.mealId,
        mealName: item.mealName,
        unitPrice: money(item.unitPriceAmount),
        quantity: item.quantity,
        lineTotal: money(item.lineTotalAmount),
        addons: item.addons.map((addon) => ({
          addonId: addon.addonId,
          name: addon.name,
          unitPrice: money(addon.unitPriceAmount),
          quantity: addon.quantity,
        })),
      }));
    });
  }

  /** Batched: each order's status history, oldest first. */
  async historyOf(orderIds: readonly string[]): Promise<OrderStatusChange[][]> {
    const byOrder = groupBy(await this.store.findStatusChanges(orderIds), (change) => change.orderId);
    return orderIds.map((id) =>
      (byOrder.get(id) ?? []).map(({ from, to, at, actor, reason, changedBy }) => ({
        from,
        to,
        at,
        actor,
        reason,
        changedBy,
      })),
    );
  }

  private async findOrThrow(orderId: string): Promise<Order> {
    const [order] = await this.store.findByIds([orderId]);
    if (!order) throw notFound('Order', orderId);
    return order;
  }

  private async applyOrThrow(
    order: Order,
    to: OrderStatus,
    actor: OrderActor,
    changedBy: string,
    reason: string | null,
    expectedVersion: number | null | undefined,
  ): Promise<Order> {
    if (expectedVersion != null && expectedVersion !== order.version) throw conflict(order, expectedVersion);
    OrderStatusMachine.assertAllowed(order.status, to, actor);
    const result = await this.store.transition(this.transitionOf(order, to, actor, changedBy, reason));
    if (result.outcome !== 'applied') throw conflict(order, order.version);
    return result.order;
  }

  /** The change with the events it publishes: the status change, and a refund request after payment. */
  private transitionOf(
    order: Order,
    to: OrderStatus,
    actor: OrderActor,
    changedBy: string,
    reason: string | null,
    handledEvent?: HandledEvent,
  ): StatusTransition {
    const version = order.version + 1;
    const events: DomainEvent[] = [
      newEvent('order.status_changed', order.id, {
        orderId: order.id,
        customerId: order.customerId,
        from: order.status,
        to,
        version,
        final: OrderStatusMachine.isFinal(to),
        actor: actor === 'SYSTEM' ? { kind: 'system', id: changedBy } : { kind: 'user', id: changedBy },
        reason,
      }),
    ];
    if (to === 'REFUND_PENDING') {
      events.push(
        newEvent('order.refund_requested', order.id, {
          orderId: order.id,
          paymentId: null,
          reason: reason ?? 'the order was cancelled after payment',
        }),
      );
    }
    return {
      orderId: order.id,
      expectedVersion: order.version,
      from: order.status,
      to,
      actor,
      changedBy,
      reason,
      events,
      handledEvent,
    };
  }

  /** Customers see their own orders; staff and services see all. */
  canSee(caller: Caller, order: Order): boolean {
    return isStaff(caller) || (caller.kind === 'user' && caller.userId === order.customerId);
  }

  private async page(customerId: string, first: number | null | undefined, after: string | null | undefined) {
    const size = pageSize(first, PAGE);
    let anchor: Order | null = null;
    if (after) {
      const [found] = await this.store.findByIds([decodeCursor(after)]);
      // A cursor into someone else's list is as invalid as a made-up one.
      if (!found || found.customerId !== customerId) throw badInput('Invalid cursor', { argument: 'after' });
      anchor = found;
    }
    return toConnection(await this.store.pageOfCustomer(customerId, size + 1, anchor), size);
  }
}

/** An earlier placing with this key: the same request gets its order, another one is refused. */
function replayPlaced(earlier: PlacedByKey, requestHash: string): Order {
  if (earlier.requestHash !== requestHash) throw idempotencyKeyReused('placeOrder');
  if (!earlier.order) throw new Error('the order placed with this idempotency key is gone');
  return earlier.order;
}

function conflict(order: Order, expectedVersion: number): DomainError {
  return new DomainError(
    ErrorCode.CONFLICT,
    `Order ${order.id} was changed by someone else (it is at version ${order.version} in status ${order.status}, not version ${expectedVersion}); reload it and try again`,
    { orderId: order.id, currentStatus: order.status },
  );
}

function reasonOf(event: DomainEvent): string | null {
  if (event.type === 'payment.failed') return `payment ${event.data.outcome.toLowerCase()}: ${event.data.reason}`;
  if (event.type === 'payment.refunded') return 'refunded';
  return null;
}

function groupBy<T>(rows: readonly T[], key: (row: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const row of rows) {
    const list = groups.get(key(row)) ?? [];
    list.push(row);
    groups.set(key(row), list);
  }
  return groups;
}
