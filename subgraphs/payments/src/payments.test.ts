import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApolloServer } from '@apollo/server';
import { PrismaPg } from '@prisma/adapter-pg';
import { createLogger, newEvent, parseEvent, type Caller } from '@food/platform';
import { errorCodes, execute, startTestSubgraphServer, testSecrets } from '@food/platform/testing';
import { createTestDatabaseClient, type TestDatabaseClient } from '@food/prisma/testing';
import { createPaymentsService, paymentsTypeDefs, startPaymentsSubgraph } from './app.js';
import { loadPaymentsConfig } from './config.js';
import { createContext, type SubgraphContext } from './context.js';
import { PrismaClient } from './data/generated/prisma/client.js';
import type {
  ChargeRequest,
  ChargeResult,
  PaymentProvider,
  RefundRequest,
  RefundResult,
} from './domain/payment-provider.js';
import { RefundNotReadyError, type OrderLookup, type PayableOrder, type PaymentsService } from './domain/payments.js';
import { SandboxPaymentProvider, sandboxReference } from './domain/sandbox-provider.js';
import { resolvers } from './resolvers/index.js';

const ALICE = '0a11ce00-0000-4000-8000-000000000001';
const BOB = '0b0b0000-0000-4000-8000-000000000002';
const alice: Caller = { kind: 'user', userId: ALICE, role: 'CUSTOMER' };
const bob: Caller = { kind: 'user', userId: BOB, role: 'CUSTOMER' };
const staff: Caller = { kind: 'user', userId: '05af0000-0000-4000-8000-000000000003', role: 'STAFF' };
const anonymous: Caller = { kind: 'anonymous' };

/** Orders is not running here: an in-memory stand-in for its `order(id)` answer. */
class FakeOrders implements OrderLookup {
  readonly orders = new Map<string, PayableOrder>();
  add(customerId: string, status = 'PENDING_PAYMENT', amount = 1250): string {
    const id = randomUUID();
    this.orders.set(id, { id, status, customerId, total: { amount, currency: 'EUR' } });
    return id;
  }
  async findOrder(id: string) {
    return this.orders.get(id) ?? null;
  }
}

/** The sandbox, counting charges; slow enough that concurrent requests really overlap. */
class CountingProvider implements PaymentProvider {
  calls: ChargeRequest[] = [];
  readonly sandbox = new SandboxPaymentProvider();
  refunds: RefundRequest[] = [];
  /** While true, every charge throws, as a provider timing out or a dropped connection would. */
  unreachable = false;
  async refund(request: RefundRequest): Promise<RefundResult> {
    this.refunds.push(request);
    return this.sandbox.refund(request);
  }
  async charge(request: ChargeRequest): Promise<ChargeResult> {
    this.calls.push(request);
    await new Promise((resolve) => setTimeout(resolve, 20));
    if (this.unreachable) throw new Error('socket hang up at provider.example:443');
    return this.sandbox.charge(request);
  }
}

let database: TestDatabaseClient<PrismaClient<'query'>>;
let prisma: PrismaClient<'query'>;
let sqlQueries: string[];
let payments: PaymentsService;
let server: ApolloServer<SubgraphContext>;
const orders = new FakeOrders();
const provider = new CountingProvider();

beforeAll(async () => {
  database = await createTestDatabaseClient('payments', PrismaClient, PrismaPg);
  ({ prisma, sqlQueries } = database);
  const config = loadPaymentsConfig({
    ...testSecrets,
    PAYMENTS_DATABASE_URL: database.url,
    ORDERS_SUBGRAPH_URL: 'http://127.0.0.1:1/graphql',
  });
  ({ payments } = createPaymentsService(config, { prisma, orders, provider }));
  server = await startTestSubgraphServer<SubgraphContext>({ typeDefs: paymentsTypeDefs, resolvers });
});

afterAll(async () => {
  await server?.stop();
  await database?.close();
});

const run = (caller: Caller, query: string, variables?: Record<string, unknown>) =>
  execute<Record<string, any>, SubgraphContext>(server, createContext(caller, payments), query, variables);

const PAY = `mutation ($input: PayForOrderInput!) {
  payForOrder(input: $input) { id status providerReference failureReason amount { amount currency } order { id } }
}`;
const pay = (caller: Caller, orderId: string, paymentToken: string, idempotencyKey: string) =>
  run(caller, PAY, { input: { orderId, paymentToken, idempotencyKey } });
const ORDER_PAYMENTS = `query ($reps: [_Any!]!) {
  _entities(representations: $reps) { ... on Order { id payment { id status } payments { id status } } }
}`;
const orderRefs = (ids: string[]) => ({ reps: ids.map((id) => ({ __typename: 'Order', id })) });

describe('payForOrder', () => {
  const paidOrder = orders.add(ALICE, 'PENDING_PAYMENT', 1250);
  let paidPaymentId = '';

  it('charges the order total and records SUCCEEDED with the provider reference', async () => {
    const before = provider.calls.length;
    const result = await pay(alice, paidOrder, 'tok_sandbox_success', 'key-success-0001');
    expect(result.errors).toBeUndefined();
    const payment = result.data!.payForOrder;
    paidPaymentId = payment.id;
    expect(payment).toMatchObject({
      status: 'SUCCEEDED',
      providerReference: sandboxReference(`${ALICE}:key-success-0001`),
      failureReason: null,
      amount: { amount: 1250, currency: 'EUR' },
      order: { id: paidOrder },
    });
    expect(provider.calls.slice(before)).toEqual([
      {
        amount: 1250,
        currency: 'EUR',
        paymentToken: 'tok_sandbox_success',
        idempotencyKey: `${ALICE}:key-success-0001`,
      },
    ]);
    const row = await prisma.payment.findUniqueOrThrow({ where: { id: payment.id } });
    expect(row).toMatchObject({ status: 'SUCCEEDED', customerId: ALICE, orderId: paidOrder, amount: 1250 });
  });

  it('returns the same payment for a repeated request with the same key, charging once', async () => {
    const before = provider.calls.length;
    const again = await pay(alice, paidOrder, 'tok_sandbox_success', 'key-success-0001');
    expect(again.errors).toBeUndefined();
    expect(again.data!.payForOrder).toMatchObject({ id: paidPaymentId, status: 'SUCCEEDED' });
    expect(provider.calls.length).toBe(before);
    expect(await prisma.payment.count({ where: { orderId: paidOrder } })).toBe(1);
  });

  it('refuses the same key with a different request', async () => {
    const otherToken = await pay(alice, paidOrder, 'tok_sandbox_decline', 'key-success-0001');
    expect(errorCodes(otherToken)).toEqual(['IDEMPOTENCY_KEY_REUSED']);
    const otherOrder = await pay(alice, orders.add(ALICE), 'tok_sandbox_success', 'key-success-0001');
    expect(errorCodes(otherOrder)).toEqual(['IDEMPOTENCY_KEY_REUSED']);
  });

  it('refuses an order that is already paid, or not waiting for payment', async () => {
    const before = provider.calls.length;
    const paid = await pay(alice, paidOrder, 'tok_sandbox_success', 'key-second-attempt');
    expect(errorCodes(paid)).toEqual(['ORDER_NOT_PAYABLE']);
    const cancelled = await pay(alice, orders.add(ALICE, 'CANCELLED'), 'tok_sandbox_success', 'key-cancelled-01');
    expect(errorCodes(cancelled)).toEqual(['ORDER_NOT_PAYABLE']);
    expect(provider.calls.length).toBe(before);
  });

  it('records a decline, then lets the customer retry after PAYMENT_FAILED with a new key', async () => {
    const orderId = orders.add(ALICE);
    const declined = await pay(alice, orderId, 'tok_sandbox_decline', 'key-decline-0001');
    expect(declined.errors).toBeUndefined();
    expect(declined.data!.payForOrder).toMatchObject({
      status: 'DECLINED',
      failureReason: 'Your card was declined',
      providerReference: null,
    });
    orders.orders.get(orderId)!.status = 'PAYMENT_FAILED';
    const retried = await pay(alice, orderId, 'tok_sandbox_success', 'key-decline-0002');
    expect(retried.data!.payForOrder.status).toBe('SUCCEEDED');
  });

  it('records a provider error as FAILED', async () => {
    const result = await pay(alice, orders.add(ALICE), 'tok_sandbox_error', 'key-error-00001');
    expect(result.errors).toBeUndefined();
    expect(result.data!.payForOrder).toMatchObject({
      status: 'FAILED',
      failureReason: 'The payment provider had an error; try again',
    });
  });

  it('leaves a payment the provider did not answer PENDING, then confirms it with the same key, once', async () => {
    const orderId = orders.add(ALICE, 'PENDING_PAYMENT', 1500);
    provider.unreachable = true;
    try {
      const result = await pay(alice, orderId, 'tok_sandbox_success', 'key-unanswered-01');
      expect(result.errors).toBeUndefined();
      expect(result.data!.payForOrder).toMatchObject({ status: 'PENDING', failureReason: null });
      expect(JSON.stringify(result)).not.toMatch(/socket|provider\.example/);
      // The money may have moved: no second attempt under another key until the first is settled.
      const again = await pay(alice, orderId, 'tok_sandbox_success', 'key-unanswered-02');
      expect(errorCodes(again)).toEqual(['ORDER_NOT_PAYABLE']);
      // Still no answer: it stays PENDING and the run says so.
      expect(await payments.confirmPending(new Date(Date.now() + 1_000))).toEqual({ settled: 0, stillPending: 1 });
    } finally {
      provider.unreachable = false;
    }
    const before = provider.calls.length;
    expect(await payments.confirmPending(new Date(Date.now() - 60_000))).toEqual({ settled: 0, stillPending: 0 });
    expect(await payments.confirmPending(new Date(Date.now() + 1_000))).toEqual({ settled: 1, stillPending: 0 });
    expect(provider.calls.slice(before).map((call) => call.idempotencyKey)).toEqual([`${ALICE}:key-unanswered-01`]);
    const payment = await prisma.payment.findFirstOrThrow({ where: { orderId } });
    expect(payment.status).toBe('SUCCEEDED');
    expect(provider.sandbox.ledger.charges.get(`${ALICE}:key-unanswered-01`)).toBe(1500);
    const events = await prisma.outboxEvent.findMany({ where: { aggregateId: payment.id } });
    expect(events.map((event) => event.type)).toEqual(['payment.succeeded']);
    // Settled: the next run finds nothing to ask about.
    expect(await payments.confirmPending(new Date(Date.now() + 1_000))).toEqual({ settled: 0, stillPending: 0 });
  });

  it('charges once for 10 concurrent identical requests and answers them all with one payment', async () => {
    const orderId = orders.add(ALICE, 'PENDING_PAYMENT', 990);
    const before = provider.calls.length;
    const results = await Promise.all(
      Array.from({ length: 10 }, () => pay(alice, orderId, 'tok_sandbox_success', 'key-concurrent-01')),
    );
    expect(results.flatMap((r) => errorCodes(r))).toEqual([]);
    expect(new Set(results.map((r) => r.data!.payForOrder.id)).size).toBe(1);
    expect(await prisma.payment.count({ where: { orderId } })).toBe(1);
    expect(provider.calls.length - before).toBe(1);
  });

  it('never charges one order twice under two different keys at once', async () => {
    const orderId = orders.add(ALICE);
    const before = provider.calls.length;
    const results = await Promise.all(
      ['key-race-a-0001', 'key-race-b-0001'].map((key) => pay(alice, orderId, 'tok_sandbox_success', key)),
    );
    expect(results.flatMap((r) => errorCodes(r))).toEqual(['ORDER_NOT_PAYABLE']);
    expect(provider.calls.length - before).toBe(1);
  });

  it("answers NOT_FOUND for another customer's order and for a missing one, storing nothing", async () => {
    const count = await prisma.payment.count();
    const bobs = await pay(alice, orders.add(BOB), 'tok_sandbox_success', 'key-not-mine-01');
    expect(errorCodes(bobs)).toEqual(['NOT_FOUND']);
    const missing = await pay(alice, randomUUID(), 'tok_sandbox_success', 'key-missing-001');
    expect(errorCodes(missing)).toEqual(['NOT_FOUND']);
    expect(bobs.errors![0]!.message.replace(/[0-9a-f-]{36}/, 'ID')).toBe(
      missing.errors![0]!.message.replace(/[0-9a-f-]{36}/, 'ID'),
    );
    expect(await prisma.payment.count()).toBe(count);
  });

  it.each(['4242424242424242', '4242 4242 4242 4242', '4000-0566-5566-5556', 'tok_4242424242424242'])(
    'refuses a card number (%s) as the token without storing or echoing it',
    async (cardNumber) => {
      const count = await prisma.payment.count();
      const orderId = orders.add(ALICE);
      const result = await pay(alice, orderId, cardNumber, 'key-card-number-1');
      expect(errorCodes(result)).toEqual(['BAD_USER_INPUT']);
      expect(result.errors![0]!.message).toBe('Send a payment-method token from the provider, never a card number');
      expect(result.errors![0]!.extensions!.field).toBe('paymentToken');
      const digits = cardNumber.replace(/\D/g, '');
      expect(JSON.stringify(result).replace(/\D/g, '')).not.toContain(digits);
      expect(await prisma.payment.count()).toBe(count);
      const rows = await prisma.$queryRaw<Record<string, unknown>[]>`SELECT * FROM payments`;
      expect(rows.length).toBe(count);
      for (const row of rows) {
        for (const value of Object.values(row)) expect(String(value).replace(/[\s-]/g, '')).not.toContain(digits);
      }
    },
  );

  it.each([
    ['orderId', { orderId: 'not-a-uuid', paymentToken: 'tok_sandbox_success', idempotencyKey: 'key-valid-0001' }],
    ['idempotencyKey', { orderId: randomUUID(), paymentToken: 'tok_sandbox_success', idempotencyKey: 'short' }],
    ['idempotencyKey', { orderId: randomUUID(), paymentToken: 'tok_sandbox_success', idempotencyKey: 'bad key!!' }],
    ['paymentToken', { orderId: randomUUID(), paymentToken: 'pm_123', idempotencyKey: 'key-valid-0001' }],
  ])('refuses a bad %s with BAD_USER_INPUT naming it', async (field, input) => {
    const result = await run(alice, PAY, { input });
    expect(errorCodes(result)).toEqual(['BAD_USER_INPUT']);
    expect(result.errors![0]!.extensions!.field).toBe(field);
  });

  it('requires a logged-in user', async () => {
    const result = await pay(anonymous, orders.add(ALICE), 'tok_sandbox_success', 'key-anonymous-1');
    expect(errorCodes(result)).toEqual(['UNAUTHENTICATED']);
  });
});

describe('reading payments', () => {
  const orderId = orders.add(ALICE);
  let declinedId = '';
  let succeededId = '';

  beforeAll(async () => {
    declinedId = (await pay(alice, orderId, 'tok_sandbox_decline', 'key-read-0001')).data!.payForOrder.id;
    orders.orders.get(orderId)!.status = 'PAYMENT_FAILED';
    succeededId = (await pay(alice, orderId, 'tok_sandbox_success', 'key-read-0002')).data!.payForOrder.id;
    // Made the older one, so the declined attempt is the latest: Order.payment must still pick the success.
    await prisma.payment.update({ where: { id: succeededId }, data: { createdAt: new Date(Date.now() - 60_000) } });
  });

  it('shows a payment to its customer and staff; NOT_FOUND to others', async () => {
    const query = `query ($id: ID!) { payment(id: $id) { id status amount { amount } order { id } } }`;
    const own = await run(alice, query, { id: succeededId });
    expect(own.data!.payment).toEqual({
      id: succeededId,
      status: 'SUCCEEDED',
      amount: { amount: 1250 },
      order: { id: orderId },
    });
    expect((await run(staff, query, { id: succeededId })).data!.payment.id).toBe(succeededId);
    expect((await run({ kind: 'service', service: 'orders' }, query, { id: succeededId })).data!.payment.id).toBe(
      succeededId,
    );
    expect(errorCodes(await run(bob, query, { id: succeededId }))).toEqual(['NOT_FOUND']);
    expect(errorCodes(await run(alice, query, { id: randomUUID() }))).toEqual(['NOT_FOUND']);
    expect(errorCodes(await run(alice, query, { id: 'nope' }))).toEqual(['BAD_USER_INPUT']);
    expect(errorCodes(await run(anonymous, query, { id: succeededId }))).toEqual(['UNAUTHENTICATED']);
  });

  it('gives Order.payment as the succeeded payment and Order.payments oldest first', async () => {
    const result = await run(alice, ORDER_PAYMENTS, orderRefs([orderId]));
    expect(result.errors).toBeUndefined();
    expect(result.data!._entities[0]).toEqual({
      id: orderId,
      payment: { id: succeededId, status: 'SUCCEEDED' },
      payments: [
        { id: succeededId, status: 'SUCCEEDED' },
        { id: declinedId, status: 'DECLINED' },
      ],
    });
  });

  it('gives the latest attempt when none succeeded, and null when none was made', async () => {
    const failing = orders.add(ALICE);
    await pay(alice, failing, 'tok_sandbox_decline', 'key-latest-0001');
    orders.orders.get(failing)!.status = 'PAYMENT_FAILED';
    const latest = (await pay(alice, failing, 'tok_sandbox_error', 'key-latest-0002')).data!.payForOrder.id;
    const unpaid = randomUUID();
    const result = await run(alice, ORDER_PAYMENTS, orderRefs([failing, unpaid]));
    expect(result.data!._entities[0].payment).toEqual({ id: latest, status: 'FAILED' });
    expect(result.data!._entities[1]).toEqual({ id: unpaid, payment: null, payments: [] });
  });

  it("hides a customer's payments from other customers on Order and Payment references", async () => {
    const asBob = await run(bob, ORDER_PAYMENTS, orderRefs([orderId]));
    expect(asBob.data!._entities[0]).toEqual({ id: orderId, payment: null, payments: [] });
    const asStaff = await run(staff, ORDER_PAYMENTS, orderRefs([orderId]));
    expect(asStaff.data!._entities[0].payments).toHaveLength(2);
    const paymentRefs = `query ($reps: [_Any!]!) { _entities(representations: $reps) { ... on Payment { id } } }`;
    const reps = { reps: [{ __typename: 'Payment', id: succeededId }] };
    expect((await run(bob, paymentRefs, reps)).data!._entities).toEqual([null]);
    expect((await run(alice, paymentRefs, reps)).data!._entities).toEqual([{ id: succeededId }]);
  });

  it('resolves N Order references and N Payment references with one query each', async () => {
    const rows = await prisma.payment.findMany({ select: { id: true, orderId: true }, orderBy: { createdAt: 'asc' } });
    const orderIds = [...new Set(rows.map((row) => row.orderId))];
    expect(orderIds.length).toBeGreaterThan(5);

    sqlQueries.length = 0;
    const byOrder = await run(staff, ORDER_PAYMENTS, orderRefs(orderIds));
    expect(byOrder.errors).toBeUndefined();
    expect(byOrder.data!._entities.map((order: { id: string }) => order.id)).toEqual(orderIds);
    expect(byOrder.data!._entities.flatMap((order: { payments: unknown[] }) => order.payments)).toHaveLength(
      rows.length,
    );
    expect(sqlQueries.filter((sql) => /FROM "public"\."payments"/.test(sql))).toHaveLength(1);

    sqlQueries.length = 0;
    const byId = await run(
      staff,
      `query ($reps: [_Any!]!) { _entities(representations: $reps) { ... on Payment { id status order { id } } } }`,
      { reps: rows.map((row) => ({ __typename: 'Payment', id: row.id })) },
    );
    expect(byId.data!._entities.map((payment: { id: string }) => payment.id)).toEqual(rows.map((row) => row.id));
    expect(sqlQueries.filter((sql) => /FROM "public"\."payments"/.test(sql))).toHaveLength(1);
  });
});

describe('configuration and sandbox', () => {
  it('serves over HTTP: ready when its database is, and only to callers with an internal token', async () => {
    const subgraph = await startPaymentsSubgraph(
      loadPaymentsConfig({
        ...testSecrets,
        PAYMENTS_PORT: '0',
        PAYMENTS_DATABASE_URL: database.url,
        ORDERS_SUBGRAPH_URL: 'http://127.0.0.1:1/graphql',
      }),
      createLogger('payments-http-test', 'silent'),
    );
    try {
      const ready = await fetch(subgraph.url.replace('/graphql', '/readyz'));
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ status: 'ready', checks: { database: 'ok' } });
      const unsigned = await fetch(subgraph.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ __typename }' }),
      });
      expect(unsigned.status).toBe(401);
    } finally {
      await subgraph.close();
    }
  });

  it('fails fast on a missing or bad variable', () => {
    expect(() => loadPaymentsConfig({ ...testSecrets, ORDERS_SUBGRAPH_URL: 'not a url' })).toThrow(
      /PAYMENTS_DATABASE_URL: .*required[\s\S]*ORDERS_SUBGRAPH_URL/,
    );
    expect(() =>
      loadPaymentsConfig({
        ...testSecrets,
        PAYMENTS_DATABASE_URL: 'postgresql://x',
        ORDERS_SUBGRAPH_URL: 'http://orders/graphql',
        PAYMENT_PROVIDER: 'stripe',
      }),
    ).toThrow(/PAYMENT_PROVIDER/);
    expect(
      loadPaymentsConfig({
        ...testSecrets,
        PAYMENTS_DATABASE_URL: 'postgresql://x',
        ORDERS_SUBGRAPH_URL: 'http://orders/graphql',
      }),
    ).toMatchObject({ PAYMENTS_PORT: 4004, HOST: '127.0.0.1', PAYMENT_PROVIDER: 'sandbox' });
  });

  it('declines an unknown token and gives the same reference for the same key', async () => {
    const sandbox = new SandboxPaymentProvider();
    const request = { amount: 100, currency: 'EUR', idempotencyKey: 'k1' };
    expect(await sandbox.charge({ ...request, paymentToken: 'tok_unknown_thing' })).toMatchObject({
      outcome: 'declined',
    });
    const first = await sandbox.charge({ ...request, paymentToken: 'tok_sandbox_success' });
    const second = await sandbox.charge({ ...request, paymentToken: 'tok_sandbox_success' });
    const other = await sandbox.charge({ ...request, idempotencyKey: 'k2', paymentToken: 'tok_sandbox_success' });
    expect(first).toEqual(second);
    expect(first).toMatchObject({ outcome: 'succeeded', reference: expect.stringMatching(/^sandbox_ch_[0-9a-f]+$/) });
    expect(other).not.toEqual(first);
  });
});

describe('settlement events and refunds', () => {
  const outboxOf = async (paymentId: string) =>
    (await prisma.outboxEvent.findMany({ where: { aggregateId: paymentId }, orderBy: { sequence: 'asc' } })).map(
      (row) => parseEvent(row.payload),
    );
  const refundRequest = (orderId: string, paymentId: string | null = null) =>
    newEvent('order.refund_requested', orderId, { orderId, paymentId, reason: 'cancelled after payment' });

  it('writes payment.succeeded with the payment, and payment.failed for a decline', async () => {
    const orderId = orders.add(ALICE, 'PENDING_PAYMENT', 990);
    const declined = (await pay(alice, orderId, 'tok_sandbox_decline', `key-${randomUUID()}`)).data!.payForOrder;
    const paid = (await pay(alice, orderId, 'tok_sandbox_success', `key-${randomUUID()}`)).data!.payForOrder;
    expect(await outboxOf(declined.id)).toMatchObject([
      { type: 'payment.failed', data: { paymentId: declined.id, orderId, outcome: 'DECLINED' } },
    ]);
    expect(await outboxOf(paid.id)).toMatchObject([
      { type: 'payment.succeeded', data: { paymentId: paid.id, orderId, amount: { amount: 990, currency: 'EUR' } } },
    ]);
  });

  it('refunds a paid order once, however often the request is delivered', async () => {
    const orderId = orders.add(ALICE, 'PENDING_PAYMENT', 1500);
    const paid = (await pay(alice, orderId, 'tok_sandbox_success', `key-${randomUUID()}`)).data!.payForOrder;
    const request = refundRequest(orderId);
    const refundsBefore = provider.refunds.length;

    const outcomes = await Promise.all([1, 2, 3].map(() => payments.refund(request)));
    expect(outcomes.filter((outcome) => outcome === 'refunded')).toHaveLength(1);
    expect(await payments.refund(request)).toBe('already_handled');

    const row = await prisma.payment.findUniqueOrThrow({ where: { id: paid.id } });
    expect(row).toMatchObject({ status: 'REFUNDED' });
    expect(row.refundReference).toMatch(/^sandbox_re_/);
    expect((await outboxOf(paid.id)).map((event) => event.type)).toEqual(['payment.succeeded', 'payment.refunded']);
    // The provider may be asked more than once under races, always with one key: money moves once.
    const keys = new Set(provider.refunds.slice(refundsBefore).map((refund) => refund.idempotencyKey));
    expect([...keys]).toEqual([`refund:${paid.id}`]);
    expect(provider.sandbox.ledger.refunds.get(`refund:${paid.id}`)).toBe(1500);
  });

  it('refunds the named payment when a payment landed on an order that could not take it', async () => {
    const orderId = orders.add(ALICE, 'PENDING_PAYMENT', 700);
    const paid = (await pay(alice, orderId, 'tok_sandbox_success', `key-${randomUUID()}`)).data!.payForOrder;
    expect(await payments.refund(refundRequest(orderId, paid.id))).toBe('refunded');
    expect((await prisma.payment.findUniqueOrThrow({ where: { id: paid.id } })).status).toBe('REFUNDED');
  });

  it('asks to be retried while there is nothing settled to refund', async () => {
    const orderId = orders.add(ALICE, 'PENDING_PAYMENT', 700);
    await expect(payments.refund(refundRequest(orderId))).rejects.toBeInstanceOf(RefundNotReadyError);
  });
});
