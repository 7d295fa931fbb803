import { z } from 'zod';
import {
  badInput,
  decodeCursor,
  forbidden,
  isStaff,
  notFound,
  pageSize,
  parseInput,
  requireUser,
  toConnection,
  unauthenticated,
  type Caller,
} from '@food/platform';
import { INITIAL_ORDER_STATUS, type OrderStatus } from './order-status.js';
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
}

/** The persistence the orders domain needs; implemented over Prisma in ../data. */
export interface OrdersStore {
  /** Writes the order, its lines, their add-ons and the first status change, all or nothing. */
  create(order: NewOrder): Promise<Order>;
  findByIds(ids: readonly string[]): Promise<Order[]>;
  /** A customer's orders newest first (createdAt desc, id desc), strictly after `after` when given. */
  pageOfCustomer(customerId: string, take: number, after: Pick<Order, 'id' | 'createdAt'> | null): Promise<Order[]>;
  /** Lines of the given orders, each order's in position order. */
  findItems(orderIds: readonly string[]): Promise<StoredOrderItem[]>;
  /** Status changes of the given orders, oldest first. */
  findStatusChanges(orderIds: readonly string[]): Promise<StoredStatusChange[]>;
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
});

const PAGE = { fallback: 10, max: 50 };

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

  async placeOrder(caller: Caller, input: unknown): Promise<Order> {
    const { userId } = requireUser(caller);
    const data = parseInput(ZPlaceOrderInput, input);
    // One call for the whole order, so a large order is not N round trips to meals.
    const menu = await this.meals.findMeals([...new Set(data.items.map((item) => item.mealId))]);
    const priced = priceOrder(data.items, menu, this.options.deliveryFeeAmount);
    return this.store.create({
      customerId: userId,
      currency: priced.currency,
      subtotalAmount: priced.subtotalAmount,
      deliveryFeeAmount: priced.deliveryFeeAmount,
      totalAmount: priced.totalAmount,
      deliveryAddress: data.deliveryAddress,
      status: INITIAL_ORDER_STATUS,
      lines: priced.lines,
      changedBy: userId,
    });
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

  /** Batched look-up for Order references: one store call; null where absent or not visible. */
  async byIds(caller: Caller, ids: readonly string[]): Promise<(Order | null)[]> {
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
      (byOrder.get(id) ?? []).map(({ from, to, at, reason, changedBy }) => ({ from, to, at, reason, changedBy })),
    );
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

function groupBy<T>(rows: readonly T[], key: (row: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const row of rows) {
    const list = groups.get(key(row)) ?? [];
    list.push(row);
    groups.set(key(row), list);
  }
  return groups;
}
