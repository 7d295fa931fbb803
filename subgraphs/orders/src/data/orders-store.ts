import { markEventHandled, newId, writeOutbox, type DomainEvent, type PersonalDataCipher } from '@food/platform';
import type { OrdersPrisma } from './prisma.js';
import type { OrderStatus } from '../domain/order-status.js';
import type {
  CreateResult,
  HandledEvent,
  NewOrder,
  Order,
  OrdersStore,
  PlacedByKey,
  QueuePosition,
  StatusTransition,
  StoredOrderItem,
  StoredStatusChange,
  TransitionResult,
} from '../domain/orders.js';

/** Thrown inside a transaction to roll it back with a known outcome. */
class Rollback extends Error {
  constructor(readonly outcome: 'conflict' | 'duplicate') {
    super(outcome);
  }
}

/** Thrown inside placeOrder's transaction to roll it back: the idempotency key is taken. */
class KeyTaken extends Error {}

const orderColumns = {
  id: true,
  customerId: true,
  status: true,
  currency: true,
  subtotalAmount: true,
  deliveryFeeAmount: true,
  totalAmount: true,
  deliveryAddress: true,
  deliveryAddressEncrypted: true,
  version: true,
  createdAt: true,
  updatedAt: true,
} as const;

interface OrderRow {
  id: string;
  customerId: string;
  status: Order['status'];
  currency: string;
  subtotalAmount: number;
  deliveryFeeAmount: number;
  totalAmount: number;
  /** Legacy plaintext (rows the worker has not moved yet), else null. */
  deliveryAddress: string | null;
  deliveryAddressEncrypted: string | null;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

/**
 * Over the orders database. The delivery address is personal data: sealed here on the way in with
 * the orders service's own key, opened on the way out, so the domain only ever sees the plaintext.
 */
export class PrismaOrdersStore implements OrdersStore {
  constructor(
    private readonly prisma: OrdersPrisma,
    private readonly cipher: PersonalDataCipher,
  ) {}

  private readonly toOrder = ({
    currency,
    subtotalAmount,
    deliveryFeeAmount,
    totalAmount,
    deliveryAddress,
    deliveryAddressEncrypted,
    ...row
  }: OrderRow): Order => ({
    ...row,
    // One of the two is set (a CHECK constraint says so).
    deliveryAddress: deliveryAddressEncrypted ? this.cipher.decrypt(deliveryAddressEncrypted) : deliveryAddress!,
    subtotal: { amount: subtotalAmount, currency },
    deliveryFee: { amount: deliveryFeeAmount, currency },
    total: { amount: totalAmount, currency },
  });

  async create(order: NewOrder): Promise<CreateResult> {
    // Ids are made here (UUIDv7, like every id in this database) so lines and add-ons can each be one
    // multi-row insert. Lines, add-ons and history carry the order's id: their partition key.
    const lines = order.lines.map((line, position) => ({ ...line, id: newId(), position }));
    try {
      return { outcome: 'created', order: this.toOrder(await this.insertOrder(order, lines)) };
    } catch (error) {
      if (error instanceof KeyTaken) return { outcome: 'key_taken' };
      throw error;
    }
  }

  private insertOrder(order: NewOrder, lines: (NewOrder['lines'][number] & { id: string; position: number })[]) {
    return this.prisma.$transaction(async (tx) => {
      // The key first: ON CONFLICT DO NOTHING waits for a concurrent twin holding it, then skips if
      // the twin committed. Nothing else is written then, and nothing fails half-way.
      const { count } = await tx.orderIdempotencyKey.createMany({
        data: [
          {
            customerId: order.customerId,
            key: order.idempotency.key,
            requestHash: order.idempotency.requestHash,
            orderId: order.id,
          },
        ],
        skipDuplicates: true,
      });
      if (count !== 1) throw new KeyTaken();
      const created = await tx.order.create({
        data: {
          id: order.id,
          customerId: order.customerId,
          status: order.status,
          currency: order.currency,
          subtotalAmount: order.subtotalAmount,
          deliveryFeeAmount: order.deliveryFeeAmount,
          totalAmount: order.totalAmount,
          deliveryAddressEncrypted: this.cipher.encrypt(order.deliveryAddress),
          deliveryAddressKeyId: this.cipher.activeKeyId,
        },
        select: orderColumns,
      });
      await tx.orderItem.createMany({
        data: lines.map((line) => ({
          id: line.id,
          orderId: created.id,
          position: line.position,
          mealId: line.mealId,
          mealName: line.mealName,
          unitPriceAmount: line.unitPriceAmount,
          quantity: line.quantity,
          lineTotalAmount: line.lineTotalAmount,
        })),
      });
      const addons = lines.flatMap((line) =>
        line.addons.map((addon) => ({
          id: newId(),
          orderId: created.id,
          orderItemId: line.id,
          addonId: addon.addonId,
          name: addon.name,
          unitPriceAmount: addon.unitPriceAmount,
          quantity: addon.quantity,
        })),
      );
      if (addons.length > 0) await tx.orderItemAddon.createMany({ data: addons });
      await tx.orderStatusChange.create({
        // The first entry is the placing itself: the same instant as the order.
        data: {
          id: newId(),
          orderId: created.id,
          fromStatus: null,
          toStatus: order.status,
          actor: 'CUSTOMER',
          changedBy: order.changedBy,
          createdAt: created.createdAt,
        },
      });
      await writeOutbox(tx, order.events);
      return created;
    });
  }

  async findByIdempotencyKey(customerId: string, key: string): Promise<PlacedByKey | null> {
    // In a mutation, reads go to the primary (read-consistency.ts): a twin's commit is seen.
    const taken = await this.prisma.orderIdempotencyKey.findUnique({
      where: { customerId_key: { customerId, key } },
      select: { requestHash: true, orderId: true },
    });
    if (!taken) return null;
    const [order] = await this.findByIds([taken.orderId]);
    return { requestHash: taken.requestHash, order: order ?? null };
  }

  deleteIdempotencyKeys(before: Date, limit: number): Promise<number> {
    // Oldest first through the created_at index, a bounded batch per statement (no long lock).
    return this.prisma.$executeRaw`
      DELETE FROM "order_idempotency_keys" WHERE ("customer_id", "key") IN (
        SELECT "customer_id", "key" FROM "order_idempotency_keys"
        WHERE "created_at" < ${before} ORDER BY "created_at" LIMIT ${limit})`;
  }

  async pageOfStatuses(statuses: readonly OrderStatus[], take: number, after: QueuePosition | null): Promise<Order[]> {
    // One status at a time, each a range of the (status, created_at, id) index read in its order: a
    // page costs at most one short index scan per status asked for, however many orders are final.
    const rows: Order[] = [];
    const start = after ? statuses.indexOf(after.status) : 0;
    for (let index = Math.max(start, 0); index < statuses.length && rows.length < take; index++) {
      const keyset =
        after && index === start
          ? {
              // `gte` bounds the index scan; the OR is the strict keyset on (createdAt, id).
              createdAt: { gte: after.createdAt },
              OR: [{ createdAt: { gt: after.createdAt } }, { id: { gt: after.id } }],
            }
          : {};
      const page = await this.prisma.order.findMany({
        where: { status: statuses[index]!, ...keyset },
        orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
        take: take - rows.length,
        select: orderColumns,
      });
      rows.push(...page.map(this.toOrder));
    }
    return rows;
  }

  async countByStatus(statuses: readonly OrderStatus[]): Promise<Map<OrderStatus, number>> {
    // Each status's range of the (status, created_at, id) index, on every partition: only the orders
    // in those statuses are read (the domain asks for statuses still in progress only).
    const groups = await this.prisma.order.groupBy({
      by: ['status'],
      where: { status: { in: [...statuses] } },
      _count: { _all: true },
    });
    return new Map(groups.map((group) => [group.status, group._count._all]));
  }

  async transition(change: StatusTransition): Promise<TransitionResult> {
    try {
      const row = await this.prisma.$transaction(async (tx) => {
        if (
          change.handledEvent &&
          !(await markEventHandled(tx, change.handledEvent.consumer, change.handledEvent.eventId))
        )
          throw new Rollback('duplicate');
        // The conditional update is the lock: of two concurrent changes at one version, one matches.
        const { count } = await tx.order.updateMany({
          where: { id: change.orderId, version: change.expectedVersion, status: change.from },
          data: { status: change.to, version: { increment: 1 } },
        });
        if (count !== 1) throw new Rollback('conflict');
        await tx.orderStatusChange.create({
          data: {
            id: newId(),
            orderId: change.orderId,
            fromStatus: change.from,
            toStatus: change.to,
            actor: change.actor,
            changedBy: change.changedBy,
            reason: change.reason,
          },
        });
        await writeOutbox(tx, change.events);
        return tx.order.findUniqueOrThrow({ where: { id: change.orderId }, select: orderColumns });
      });
      return { outcome: 'applied', order: this.toOrder(row) };
    } catch (error) {
      if (error instanceof Rollback) return { outcome: error.outcome };
      throw error;
    }
  }

  async recordHandled(handled: HandledEvent, events: DomainEvent[]): Promise<'recorded' | 'duplicate'> {
    try {
      await this.prisma.$transaction(async (tx) => {
        if (!(await markEventHandled(tx, handled.consumer, handled.eventId))) throw new Rollback('duplicate');
        await writeOutbox(tx, events);
      });
      return 'recorded';
    } catch (error) {
      if (error instanceof Rollback) return 'duplicate';
      throw error;
    }
  }

  async findStale(statuses: readonly OrderStatus[], before: Date, limit: number): Promise<Order[]> {
    const rows = await this.prisma.order.findMany({
      where: { status: { in: [...statuses] }, createdAt: { lt: before } },
      orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
      take: limit,
      select: orderColumns,
    });
    return rows.map(this.toOrder);
  }

  async findByIds(ids: readonly string[]): Promise<Order[]> {
    if (ids.length === 0) return [];
    const rows = await this.prisma.order.findMany({ where: { id: { in: [...ids] } }, select: orderColumns });
    return rows.map(this.toOrder);
  }

  async pageOfCustomer(
    customerId: string,
    take: number,
    after: Pick<Order, 'id' | 'createdAt'> | null,
  ): Promise<Order[]> {
    const rows = await this.prisma.order.findMany({
      where: {
        customerId,
        // Keyset pagination on (createdAt, id), matching the index and the sort.
        ...(after && {
          OR: [{ createdAt: { lt: after.createdAt } }, { createdAt: after.createdAt, id: { lt: after.id } }],
        }),
      },
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take,
      select: orderColumns,
    });
    return rows.map(this.toOrder);
  }

  async findItems(orderIds: readonly string[]): Promise<StoredOrderItem[]> {
    if (orderIds.length === 0) return [];
    return this.prisma.orderItem.findMany({
      where: { orderId: { in: [...orderIds] } },
      orderBy: [{ orderId: 'asc' }, { position: 'asc' }],
      select: {
        id: true,
        orderId: true,
        mealId: true,
        mealName: true,
        unitPriceAmount: true,
        quantity: true,
        lineTotalAmount: true,
        addons: {
          orderBy: { addonId: 'asc' },
          select: { addonId: true, name: true, unitPriceAmount: true, quantity: true },
        },
      },
    });
  }

  async findStatusChanges(orderIds: readonly string[]): Promise<StoredStatusChange[]> {
    if (orderIds.length === 0) return [];
    const rows = await this.prisma.orderStatusChange.findMany({
      where: { orderId: { in: [...orderIds] } },
      orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
      select: {
        orderId: true,
        fromStatus: true,
        toStatus: true,
        createdAt: true,
        actor: true,
        reason: true,
        changedBy: true,
      },
    });
    return rows.map((row) => ({
      orderId: row.orderId,
      from: row.fromStatus,
      to: row.toStatus,
      at: row.createdAt,
      actor: row.actor,
      reason: row.reason,
      changedBy: row.changedBy,
    }));
  }
}
