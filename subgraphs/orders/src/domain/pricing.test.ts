import { describe, expect, it } from 'vitest';
import { DomainError } from '@food/platform';
import { priceOrder, type MenuMeal, type RequestedLine } from './pricing.js';

const PIZZA = '10000000-0000-4000-8000-000000000001';
const SALAD = '10000000-0000-4000-8000-000000000002';
const GONE = '10000000-0000-4000-8000-000000000003';
const SODA = '10000000-0000-4000-8000-000000000004';
const CHEESE = '20000000-0000-4000-8000-000000000001';
const OLIVES = '20000000-0000-4000-8000-000000000002';
const DRESSING = '20000000-0000-4000-8000-000000000003';

const eur = (amount: number) => ({ amount, currency: 'EUR' });
const menu = new Map<string, MenuMeal>(
  [
    {
      id: PIZZA,
      name: 'Margherita',
      available: true,
      price: eur(1250),
      addons: [
        { id: CHEESE, name: 'Extra cheese', available: true, maxQuantity: 3, price: eur(150) },
        { id: OLIVES, name: 'Olives', available: false, maxQuantity: 1, price: eur(100) },
      ],
    },
    {
      id: SALAD,
      name: 'Salad',
      available: true,
      price: eur(800),
      addons: [{ id: DRESSING, name: 'Dressing', available: true, maxQuantity: 2, price: eur(50) }],
    },
    { id: GONE, name: 'Sold out', available: false, price: eur(900), addons: [] },
    { id: SODA, name: 'Soda', available: true, price: { amount: 300, currency: 'USD' }, addons: [] },
  ].map((meal): [string, MenuMeal] => [meal.id, meal]),
);

const line = (mealId: string, quantity: number, addons: [string, number][] = []): RequestedLine => ({
  mealId,
  quantity,
  addons: addons.map(([addonId, addonQuantity]) => ({ addonId, quantity: addonQuantity })),
});

describe('priceOrder', () => {
  it.each([
    ['one plain portion', [line(PIZZA, 1)], 0, [1250], 1250, 1250],
    ['several portions', [line(PIZZA, 3)], 299, [3750], 3750, 4049],
    ['add-ons per portion, times the quantity', [line(PIZZA, 2, [[CHEESE, 2]])], 299, [3100], 3100, 3399],
    [
      'several lines, each with its own add-ons',
      [line(PIZZA, 2, [[CHEESE, 3]]), line(SALAD, 1, [[DRESSING, 2]]), line(PIZZA, 1)],
      299,
      [3400, 900, 1250],
      5550,
      5849,
    ],
    ['a free delivery', [line(SALAD, 4)], 0, [3200], 3200, 3200],
  ])('prices %s', (_label, lines, fee, lineTotals, subtotal, total) => {
    const priced = priceOrder(lines, menu, fee);
    expect(priced.lines.map((l) => l.lineTotalAmount)).toEqual(lineTotals);
    expect(priced).toMatchObject({
      currency: 'EUR',
      subtotalAmount: subtotal,
      deliveryFeeAmount: fee,
      totalAmount: total,
    });
  });

  it('snapshots names and unit prices from the menu', () => {
    const [priced] = priceOrder([line(PIZZA, 2, [[CHEESE, 1]])], menu, 0).lines;
    expect(priced).toEqual({
      mealId: PIZZA,
      mealName: 'Margherita',
      unitPriceAmount: 1250,
      quantity: 2,
      addons: [{ addonId: CHEESE, name: 'Extra cheese', unitPriceAmount: 150, quantity: 1 }],
      lineTotalAmount: 2800,
    });
  });

  it.each([
    [
      'an unknown meal',
      [line('10000000-0000-4000-8000-00000000ffff', 1)],
      'MEAL_UNAVAILABLE',
      { mealId: '10000000-0000-4000-8000-00000000ffff' },
    ],
    [
      'an unavailable meal',
      [line(PIZZA, 1), line(GONE, 1)],
      'MEAL_UNAVAILABLE',
      { mealId: GONE, field: 'items.1.mealId' },
    ],
    ['an add-on of another meal', [line(PIZZA, 1, [[DRESSING, 1]])], 'ADDON_NOT_ON_MEAL', { addonId: DRESSING }],
    ['an unavailable add-on', [line(PIZZA, 1, [[OLIVES, 1]])], 'MEAL_UNAVAILABLE', { mealId: PIZZA, addonId: OLIVES }],
    [
      'an add-on over its maximum',
      [line(PIZZA, 1, [[CHEESE, 4]])],
      'QUANTITY_OUT_OF_RANGE',
      { addonId: CHEESE, max: 3 },
    ],
    ['mixed currencies', [line(PIZZA, 1), line(SODA, 1)], 'BAD_USER_INPUT', { field: 'items' }],
  ])('refuses %s', (_label, lines, code, details) => {
    let caught: unknown;
    try {
      priceOrder(lines, menu, 299);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(DomainError);
    expect((caught as DomainError).code).toBe(code);
    expect((caught as DomainError).details).toMatchObject(details);
  });

  it('refuses a total too large for a 32-bit amount, and accepts the largest one', () => {
    expect(priceOrder([line(PIZZA, 1)], menu, 2_147_483_647 - 1250).totalAmount).toBe(2_147_483_647);
    expect(() => priceOrder([line(PIZZA, 1)], menu, 2_147_483_647 - 1249)).toThrow(/too large/);
  });
});
