import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DomainError, InternalTokens, ServiceClient } from '@food/platform';
import { FakeUpstream, testSecrets, unreachableUrl } from '@food/platform/testing';
import { MealsCatalogClient } from './meals-catalog-client.js';

const PIZZA = '11111111-1111-4111-8111-111111111111';
const MISSING = '22222222-2222-4222-8222-222222222222';
const BROKEN = '33333333-3333-4333-8333-333333333333';
const CHEESE = '44444444-4444-4444-8444-444444444444';

const tokens = new InternalTokens(testSecrets.INTERNAL_TOKEN_SECRET);
const upstream: FakeUpstream<{ ids: string[] }> = new FakeUpstream((request) => answer(request.body.variables.ids));
const seen = upstream.requests;

const pizza = {
  id: PIZZA,
  name: 'Margherita',
  available: true,
  price: { amount: 1250, currency: 'EUR' },
  addons: [
    { id: CHEESE, name: 'Extra cheese', available: true, maxQuantity: 3, price: { amount: 150, currency: 'EUR' } },
  ],
};

/** Answers the way the meals subgraph does: in the order asked, null where unknown. */
function answer(ids: string[]) {
  if (ids.includes(BROKEN)) {
    return {
      data: null,
      errors: [{ message: `boom at ${upstream.url}`, extensions: { code: 'INTERNAL_SERVER_ERROR' } }],
    };
  }
  return { data: { mealsByIds: ids.map((id) => (id === PIZZA ? pizza : null)) } };
}

beforeAll(() => upstream.start());

afterAll(() => upstream.close());

const client = () =>
  new MealsCatalogClient(new ServiceClient({ caller: 'orders', url: upstream.url, tokens, timeoutMs: 2_000 }));

describe('MealsCatalogClient over HTTP', () => {
  it('asks meals for all ids in one call, signed as the orders service, and maps the answer', async () => {
    seen.length = 0;
    const meals = await client().findMeals([PIZZA, MISSING]);
    expect([...meals.keys()]).toEqual([PIZZA]);
    expect(meals.get(PIZZA)).toEqual(pizza);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.body.query).toMatch(/mealsByIds\(ids: \$ids\)/);
    expect(seen[0]!.body.query).toMatch(/addons \{ id name available maxQuantity price \{ amount currency \} \}/);
    expect(seen[0]!.body.variables).toEqual({ ids: [PIZZA, MISSING] });
    const header = seen[0]!.headers['x-internal-token'];
    expect(typeof header).toBe('string');
    expect(await tokens.verify(header as string)).toEqual({ kind: 'service', service: 'orders' });
  });

  it('does not call meals for no ids', async () => {
    seen.length = 0;
    expect((await client().findMeals([])).size).toBe(0);
    expect(seen).toHaveLength(0);
  });

  it('turns a meals error into UPSTREAM_UNAVAILABLE without leaking its URL', async () => {
    const error = await client()
      .findMeals([BROKEN])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DomainError);
    expect((error as DomainError).code).toBe('UPSTREAM_UNAVAILABLE');
    expect((error as DomainError).message).not.toContain('127.0.0.1');
  });

  it('raises UPSTREAM_UNAVAILABLE when meals is down', async () => {
    const downUrl = await unreachableUrl();
    const catalog = new MealsCatalogClient(new ServiceClient({ caller: 'orders', url: downUrl, tokens }));
    const error = await catalog.findMeals([PIZZA]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DomainError);
    expect((error as DomainError).code).toBe('UPSTREAM_UNAVAILABLE');
    expect(JSON.stringify((error as DomainError).details)).not.toContain('127.0.0.1');
  });
});
