import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DomainError, InternalTokens, ServiceClient } from '@food/platform';
import { FakeUpstream, testSecrets, unreachableUrl } from '@food/platform/testing';
import { OrdersLookupClient } from './orders-lookup-client.js';

const FOUND = '11111111-1111-4111-8111-111111111111';
const MISSING = '22222222-2222-4222-8222-222222222222';
const NULL_ORDER = '33333333-3333-4333-8333-333333333333';
const BROKEN = '44444444-4444-4444-8444-444444444444';
const CUSTOMER = '55555555-5555-4555-8555-555555555555';

const tokens = new InternalTokens(testSecrets.INTERNAL_TOKEN_SECRET);
const upstream = new FakeUpstream<{ id: string }>((request) => answer(request.body.variables.id));
const seen = upstream.requests;

/** Answers the way the orders subgraph does, for the ids above. */
function answer(id: string) {
  if (id === FOUND) {
    return {
      data: {
        order: {
          id: FOUND,
          status: 'PENDING_PAYMENT',
          total: { amount: 2350, currency: 'EUR' },
          customer: { id: CUSTOMER },
        },
      },
    };
  }
  if (id === MISSING) {
    return {
      data: { order: null },
      errors: [{ message: `Order ${MISSING} was not found`, path: ['order'], extensions: { code: 'NOT_FOUND' } }],
    };
  }
  if (id === NULL_ORDER) return { data: { order: null } };
  return { data: null, errors: [{ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] };
}

beforeAll(() => upstream.start());

afterAll(() => upstream.close());

const client = () =>
  new OrdersLookupClient(new ServiceClient({ caller: 'payments', url: upstream.url, tokens, timeoutMs: 2_000 }));

describe('OrdersLookupClient over HTTP', () => {
  it('asks orders for the order, signed as the payments service, and maps the answer', async () => {
    seen.length = 0;
    const order = await client().findOrder(FOUND);
    expect(order).toEqual({
      id: FOUND,
      status: 'PENDING_PAYMENT',
      customerId: CUSTOMER,
      total: { amount: 2350, currency: 'EUR' },
    });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.body.query).toMatch(/order\(id: \$id\)/);
    expect(seen[0]!.body.variables).toEqual({ id: FOUND });
    const header = seen[0]!.headers['x-internal-token'];
    expect(typeof header).toBe('string');
    expect(await tokens.verify(header as string)).toEqual({ kind: 'service', service: 'payments' });
  });

  it('answers null for an order orders reports NOT_FOUND, or returns as null', async () => {
    expect(await client().findOrder(MISSING)).toBeNull();
    expect(await client().findOrder(NULL_ORDER)).toBeNull();
  });

  it('turns any other orders error into UPSTREAM_UNAVAILABLE', async () => {
    const error = await client()
      .findOrder(BROKEN)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DomainError);
    expect((error as DomainError).code).toBe('UPSTREAM_UNAVAILABLE');
  });

  it('raises UPSTREAM_UNAVAILABLE when orders is down', async () => {
    const downUrl = await unreachableUrl();
    const lookup = new OrdersLookupClient(new ServiceClient({ caller: 'payments', url: downUrl, tokens }));
    const error = await lookup.findOrder(FOUND).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DomainError);
    expect((error as DomainError).code).toBe('UPSTREAM_UNAVAILABLE');
  });
});
