import { z } from 'zod';
import {
  DomainError,
  ErrorCode,
  idempotencyKeyReused,
  isStaff,
  newEvent,
  notFound,
  parseInput,
  requestFingerprint as fingerprintOf,
  requireUser,
  unauthenticated,
  ZIdempotencyKey,
  type Caller,
  type DomainEvent,
  type EventOf,
} from '@food/platform';
import type { PaymentProvider } from './payment-provider.js';
import { parsePaymentToken } from './payment-token.js';

export type PaymentStatus = 'PENDING' | 'SUCCEEDED' | 'DECLINED' | 'FAILED' | 'REFUNDED';

/** One payment attempt. The payment-method token stays in the store: nothing here shows it. */
export interface Payment {
  id: string;
  orderId: string;
  customerId: string;
  amount: number;
  currency: string;
  status: PaymentStatus;
  providerReference: string | null;
  failureReason: string | null;
  refundReference: string | null;
  refundedAt: Date | null;
  idempotencyKey: string;
  /** sha256 of the request the idempotency key was first used with. */
  requestFingerprint: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface NewPayment {
  orderId: string;
  customerId: string;
  amount: number;
  currency: string;
  paymentMethodToken: string;
  idempotencyKey: string;
  requestFingerprint: string;
}

export type Settlement =
  { status: 'SUCCEEDED'; providerReference: string } | { status: 'DECLINED' | 'FAILED'; failureReason: string };

/** The key (customerId, idempotencyKey) is taken: the request is a retry or a reuse. */
export class IdempotencyKeyTakenError extends Error {}

/** The persistence the payments domain needs; implemented over Prisma in ../data. */
export interface PaymentsStore {
  findByKey(customerId: string, idempotencyKey: string): Promise<Payment | null>;
  findByIds(ids: readonly string[]): Promise<Payment[]>;
  /** Every payment of the given orders, oldest first. */
  findByOrderIds(orderIds: readonly string[]): Promise<Payment[]>;
  /**
   * Inserts a PENDING payment unless the order already has a SUCCEEDED or PENDING one (then
   * `order_not_payable`), serialised per order so two keys cannot both charge one order.
   * Throws IdempotencyKeyTakenError when the key is taken.
   */
  insertPending(payment: NewPayment): Promise<{ inserted: Payment } | { refused: 'order_not_payable' }>;
  /**
   * Records the outcome and its event (payment.succeeded or payment.failed) in one transaction, if
   * the payment is still PENDING; otherwise (settled meanwhile) writes nothing. Returns the payment.
   */
  settle(id: string, settlement: Settlement, events: DomainEvent[]): Promise<Payment>;
  /** PENDING payments last touched before `before`, oldest first, with the token to ask the provider again. */
  findUnconfirmed(before: Date, limit: number): Promise<{ payment: Payment; paymentMethodToken: string }[]>;
  /**
   * Marks a SUCCEEDED payment REFUNDED with its event and the handled-event marker, in one
   * transaction. 'duplicate' when the event was handled before, 'not_refundable' when the payment is
   * no longer SUCCEEDED (refunded already): nothing is written then.
   */
  markRefunded(
    id: string,
    refundReference: string,
    events: DomainEvent[],
    handled: { consumer: string; eventId: string },
  ): Promise<'refunded' | 'duplicate' | 'not_refundable'>;
  /** Whether this consumer has handled the event. */
  wasHandled(consumer: string, eventId: string): Promise<boolean>;
}

/** The consumer name under which payments remembers the refund requests it handled. */
export const REFUND_CONSUMER = 'payments-refunds';

/** A refund could not be made yet (e.g. the payment is still pending): retry later. */
export class RefundNotReadyError extends Error {
  override name = 'RefundNotReadyError';
}

/** An order as payments needs it, from the orders subgraph. */
export interface PayableOrder {
  id: string;
  status: string;
  customerId: string;
  total: { amount: number; currency: string };
}

/** The port to the orders service (never its database). Null when the order does not exist. */
export interface OrderLookup {
  findOrder(id: string): Promise<PayableOrder | null>;
}

const PAYABLE_ORDER_STATUSES = new Set(['PENDING_PAYMENT', 'PAYMENT_FAILED']);
/** How many unconfirmed payments one confirmation run asks the provider about. */
const CONFIRM_BATCH = 100;

const ZUuid = z.uuid({ error: 'must be a UUID' });
const ZPayForOrderInput = z.object({
  orderId: z.uuid({ error: 'must be a UUID' }),
  idempotencyKey: ZIdempotencyKey,
  // Checked by parsePaymentToken: its message must never include the value.
  paymentToken: z.unknown(),
});

/** Paying for orders and reading payments: every rule about payments lives here. */
export class PaymentsService {
  constructor(
    private readonly store: PaymentsStore,
    private readonly orders: OrderLookup,
    private readonly provider: PaymentProvider,
    /** Told when the provider throws (the payment then stays PENDING until it is confirmed). */
    private readonly onProviderError: (error: unknown) => void = () => {},
  ) {}

  async payForOrder(caller: Caller, input: unknown): Promise<Payment> {
    const { userId } = requireUser(caller);
    const { orderId, idempotencyKey, paymentToken: rawToken } = parseInput(ZPayForOrderInput, input);
    const paymentToken = parsePaymentToken(rawToken);
    const requestFingerprint = fingerprintOf(orderId, paymentToken);

    const earlier = await this.store.findByKey(userId, idempotencyKey);
    if (earlier) return this.replay(earlier, requestFingerprint);

    const order = await this.orders.findOrder(orderId);
    // A missing order and someone else's answer alike, so existence does not leak.
    if (!order || order.customerId !== userId) throw notFound('Order', orderId);
    if (!PAYABLE_ORDER_STATUSES.has(order.status)) throw notPayable(orderId, `it is ${order.status}`);

    let pending: Payment;
    try {
      const result = await this.store.insertPending({
        orderId,
        customerId: userId,
        amount: order.total.amount,
        currency: order.total.currency,
        paymentMethodToken: paymentToken,
        idempotencyKey,
        requestFingerprint,
      });
      if ('refused' in result) throw notPayable(orderId, 'it is paid or a payment is in progress');
      pending = result.inserted;
    } catch (error) {
      if (!(error instanceof IdempotencyKeyTakenError)) throw error;
      // A concurrent duplicate inserted first: answer as a retry would, never charge twice.
      const winner = await this.store.findByKey(userId, idempotencyKey);
      if (!winner) throw error;
      return this.replay(winner, requestFingerprint);
    }

    const settlement = await this.charge(pending, paymentToken);
    // No answer from the provider: the money may or may not have moved. The payment stays PENDING (the
    // order cannot be paid again meanwhile) until confirmPending asks the provider with the same key.
    if (!settlement) return pending;
    return this.store.settle(pending.id, settlement, [settlementEvent(pending, settlement)]);
  }

  /**
   * Settles payments the provider has not answered for (it failed or timed out, or this service died
   * mid-charge) by repeating the charge under the same idempotency key: the provider answers with the
   * original outcome and moves no money twice. `before` leaves alone payments still being charged.
   */
  async confirmPending(before: Date): Promise<{ settled: number; stillPending: number }> {
    let settled = 0;
    let stillPending = 0;
    for (const { payment, paymentMethodToken } of await this.store.findUnconfirmed(before, CONFIRM_BATCH)) {
      const settlement = await this.charge(payment, paymentMethodToken);
      if (!settlement) {
        stillPending++;
        continue;
      }
      const after = await this.store.settle(payment.id, settlement, [settlementEvent(payment, settlement)]);
      if (after.status === settlement.status) settled++;
    }
    return { settled, stillPending };
  }

  /**
   * Pays back what an order's refund request names: the given payment, or the order's successful
   * one. Idempotent end to end: the provider call uses a key per payment, and the database change is
   * conditional and remembers the request, so a retried job or a redelivered event refunds once.
   */
  async refund(request: EventOf<'order.refund_requested'>): Promise<'refunded' | 'already_handled'> {
    if (await this.store.wasHandled(REFUND_CONSUMER, request.id)) return 'already_handled';
    const payments = await this.store.findByOrderIds([request.data.orderId]);
    const target = request.data.paymentId
      ? payments.find((payment) => payment.id === request.data.paymentId)
      : (payments.find((payment) => payment.status === 'SUCCEEDED') ?? payments.find((p) => p.status === 'REFUNDED'));
    if (!target || target.status === 'PENDING') {
      throw new RefundNotReadyError(`order ${request.data.orderId} has no settled payment to refund yet`);
    }
    if (target.status !== 'SUCCEEDED' && target.status !== 'REFUNDED') {
      throw new RefundNotReadyError(`payment ${target.id} is ${target.status}: nothing was taken to give back`);
    }
    if (target.status === 'SUCCEEDED') {
      const result = await this.provider.refund({
        chargeReference: target.providerReference ?? '',
        amount: target.amount,
        currency: target.currency,
        idempotencyKey: `refund:${target.id}`,
      });
      if (result.outcome !== 'refunded') throw new Error(`the provider refused the refund: ${result.reason}`);
      const event = newEvent('payment.refunded', target.id, {
        paymentId: target.id,
        orderId: target.orderId,
        amount: { amount: target.amount, currency: target.currency },
      });
      const outcome = await this.store.markRefunded(target.id, result.reference, [event], {
        consumer: REFUND_CONSUMER,
        eventId: request.id,
      });
      return outcome === 'refunded' ? 'refunded' : 'already_handled';
    }
    return 'already_handled';
  }

  async payment(caller: Caller, id: unknown): Promise<Payment> {
    if (caller.kind === 'anonymous') throw unauthenticated();
    const paymentId = parseInput(ZUuid, id);
    const [payment] = await this.store.findByIds([paymentId]);
    if (!payment || !this.canSee(caller, payment)) throw notFound('Payment', paymentId);
    return payment;
  }

  /** Batched look-up for Payment references: one store call; null where absent or not visible. */
  async byIds(caller: Caller, ids: readonly string[]): Promise<(Payment | null)[]> {
    const valid = ids.filter((id) => ZUuid.safeParse(id).success);
    const found = new Map(
      (valid.length ? await this.store.findByIds(valid) : [])
        .filter((payment) => this.canSee(caller, payment))
        .map((payment) => [payment.id, payment]),
    );
    return ids.map((id) => found.get(id) ?? null);
  }

  /** Batched: each order's visible payments, oldest first, from one store call. */
  async byOrderIds(caller: Caller, orderIds: readonly string[]): Promise<Payment[][]> {
    const valid = orderIds.filter((id) => ZUuid.safeParse(id).success);
    const byOrder = new Map<string, Payment[]>();
    for (const payment of valid.length ? await this.store.findByOrderIds(valid) : []) {
      if (!this.canSee(caller, payment)) continue;
      const list = byOrder.get(payment.orderId) ?? [];
      list.push(payment);
      byOrder.set(payment.orderId, list);
    }
    return orderIds.map((id) => byOrder.get(id) ?? []);
  }

  /** Customers see their own payments; staff and services see all. */
  canSee(caller: Caller, payment: Payment): boolean {
    return isStaff(caller) || (caller.kind === 'user' && caller.userId === payment.customerId);
  }

  /** An earlier request with this key: the same request gets the same answer, another is refused. */
  private replay(earlier: Payment, requestFingerprint: string): Payment {
    if (earlier.requestFingerprint !== requestFingerprint) throw idempotencyKeyReused('payment');
    return earlier;
  }

  /** The provider's answer, or null when it gave none (threw). */
  private async charge(pending: Payment, paymentToken: string): Promise<Settlement | null> {
    try {
      const result = await this.provider.charge({
        amount: pending.amount,
        currency: pending.currency,
        paymentToken,
        // Provider keys are merchant-wide, ours are per customer: scope it so two customers never collide.
        idempotencyKey: `${pending.customerId}:${pending.idempotencyKey}`,
      });
      if (result.outcome === 'succeeded') return { status: 'SUCCEEDED', providerReference: result.reference };
      return { status: result.outcome === 'declined' ? 'DECLINED' : 'FAILED', failureReason: result.reason };
    } catch (error) {
      this.onProviderError(error);
      return null;
    }
  }
}

/** What the rest of the platform hears about a settled payment. */
function settlementEvent(payment: Payment, settlement: Settlement): DomainEvent {
  if (settlement.status === 'SUCCEEDED') {
    return newEvent('payment.succeeded', payment.id, {
      paymentId: payment.id,
      orderId: payment.orderId,
      amount: { amount: payment.amount, currency: payment.currency },
    });
  }
  return newEvent('payment.failed', payment.id, {
    paymentId: payment.id,
    orderId: payment.orderId,
    outcome: settlement.status,
    reason: settlement.failureReason,
  });
}

/** The most relevant payment of an order: the one that settled it, else the latest attempt. */
export function settlingPayment(paymentsOldestFirst: readonly Payment[]): Payment | null {
  return paymentsOldestFirst.find((payment) => payment.status === 'SUCCEEDED') ?? paymentsOldestFirst.at(-1) ?? null;
}

const notPayable = (orderId: string, why: string) =>
  new DomainError(ErrorCode.ORDER_NOT_PAYABLE, `Order ${orderId} cannot be paid: ${why}`, { id: orderId });
