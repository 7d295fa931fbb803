import { markEventHandled, writeOutbox, type DomainEvent } from '@food/platform';
import { Prisma } from './generated/prisma/client.js';
import type { PaymentsPrisma } from './prisma.js';
import {
  IdempotencyKeyTakenError,
  type NewPayment,
  type Payment,
  type PaymentsStore,
  type Settlement,
} from '../domain/payments.js';

/** Everything but the payment-method token, which is written once and never read back. */
const columns = {
  id: true,
  orderId: true,
  customerId: true,
  amount: true,
  currency: true,
  status: true,
  providerReference: true,
  failureReason: true,
  refundReference: true,
  refundedAt: true,
  idempotencyKey: true,
  requestFingerprint: true,
  createdAt: true,
  updatedAt: true,
} as const;

export class PrismaPaymentsStore implements PaymentsStore {
  constructor(private readonly prisma: PaymentsPrisma) {}

  findByKey(customerId: string, idempotencyKey: string): Promise<Payment | null> {
    return this.prisma.payment.findUnique({
      where: { customerId_idempotencyKey: { customerId, idempotencyKey } },
      select: columns,
    });
  }

  findByIds(ids: readonly string[]): Promise<Payment[]> {
    if (ids.length === 0) return Promise.resolve([]);
    return this.prisma.payment.findMany({ where: { id: { in: [...ids] } }, select: columns });
  }

  findByOrderIds(orderIds: readonly string[]): Promise<Payment[]> {
    if (orderIds.length === 0) return Promise.resolve([]);
    return this.prisma.payment.findMany({
      where: { orderId: { in: [...orderIds] } },
      orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
      select: columns,
    });
  }

  async insertPending(payment: NewPayment): Promise<{ inserted: Payment } | { refused: 'order_not_payable' }> {
    try {
      return await this.prisma.$transaction(async (tx) => {
        // One writer per order at a time, so the check below and the insert cannot interleave.
        await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtextextended(${payment.orderId}, 0))`;
        const sameKey = await tx.payment.findUnique({
          where: {
            customerId_idempotencyKey: { customerId: payment.customerId, idempotencyKey: payment.idempotencyKey },
          },
          select: { id: true },
        });
        if (sameKey) throw new IdempotencyKeyTakenError();
        const blocking = await tx.payment.findFirst({
          where: { orderId: payment.orderId, status: { in: ['SUCCEEDED', 'PENDING'] } },
          select: { id: true },
        });
        if (blocking) return { refused: 'order_not_payable' as const };
        return { inserted: await tx.payment.create({ data: { ...payment, status: 'PENDING' }, select: columns }) };
      });
    } catch (error) {
      if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002') {
        throw new IdempotencyKeyTakenError();
      }
      throw error;
    }
  }

  settle(id: string, settlement: Settlement, events: DomainEvent[]): Promise<Payment> {
    return this.prisma.$transaction(async (tx) => {
      // Conditional: a request and the confirmation job may both settle; one writes, with one event.
      const { count } = await tx.payment.updateMany({ where: { id, status: 'PENDING' }, data: settlement });
      if (count === 1) await writeOutbox(tx, events);
      return tx.payment.findUniqueOrThrow({ where: { id }, select: columns });
    });
  }

  async findUnconfirmed(before: Date, limit: number) {
    const rows = await this.prisma.payment.findMany({
      where: { status: 'PENDING', updatedAt: { lt: before } },
      orderBy: { updatedAt: 'asc' },
      take: limit,
      select: { ...columns, paymentMethodToken: true },
    });
    return rows.map(({ paymentMethodToken, ...payment }) => ({ payment, paymentMethodToken }));
  }

  async markRefunded(
    id: string,
    refundReference: string,
    events: DomainEvent[],
    handled: { consumer: string; eventId: string },
  ): Promise<'refunded' | 'duplicate' | 'not_refundable'> {
    try {
      await this.prisma.$transaction(async (tx) => {
        if (!(await markEventHandled(tx, handled.consumer, handled.eventId))) throw new Rollback('duplicate');
        const { count } = await tx.payment.updateMany({
          where: { id, status: 'SUCCEEDED' },
          data: { status: 'REFUNDED', refundReference, refundedAt: new Date() },
        });
        if (count !== 1) throw new Rollback('not_refundable');
        await writeOutbox(tx, events);
      });
      return 'refunded';
    } catch (error) {
      if (error instanceof Rollback) return error.outcome;
      throw error;
    }
  }

  async wasHandled(consumer: string, eventId: string): Promise<boolean> {
    return (await this.prisma.processedEvent.count({ where: { consumer, eventId } })) > 0;
  }
}

/** Thrown inside a transaction to roll it back with a known outcome. */
class Rollback extends Error {
  constructor(readonly outcome: 'duplicate' | 'not_refundable') {
    super(outcome);
  }
}
