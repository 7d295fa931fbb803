import { badInput, DomainError, ErrorCode } from '@food/platform';

/** An amount of money in integer minor units; never a float. */
export interface Money {
  amount: number;
  currency: string;
}

/** A meal as the menu (the meals service) describes it now. */
export interface MenuMeal {
  id: string;
  name: string;
  available: boolean;
  price: Money;
  addons: MenuAddon[];
}

export interface MenuAddon {
  id: string;
  name: string;
  available: boolean;
  maxQuantity: number;
  price: Money;
}

/** One validated line as the customer asked for it: no prices, they come from the menu. */
export interface RequestedLine {
  mealId: string;
  quantity: number;
  addons: { addonId: string; quantity: number }[];
}

export interface PricedAddon {
  addonId: string;
  name: string;
  unitPriceAmount: number;
  quantity: number;
}

export interface PricedLine {
  mealId: string;
  mealName: string;
  unitPriceAmount: number;
  quantity: number;
  addons: PricedAddon[];
  lineTotalAmount: number;
}

export interface PricedOrder {
  currency: string;
  lines: PricedLine[];
  subtotalAmount: number;
  deliveryFeeAmount: number;
  totalAmount: number;
}

/** Amounts are stored as Postgres `integer` and served as GraphQL `Int`: both 32-bit. */
const MAX_AMOUNT = 2_147_483_647;

/**
 * Prices an order from today's menu: every line is checked against the menu, then priced as
 * (unit price + sum of add-on price x add-on quantity) x quantity. Pure; throws a DomainError on the
 * first line the menu refuses.
 */
export function priceOrder(
  lines: readonly RequestedLine[],
  menu: ReadonlyMap<string, MenuMeal>,
  deliveryFeeAmount: number,
): PricedOrder {
  const currencies = new Set<string>();
  const priced = lines.map((line, index): PricedLine => {
    const meal = menu.get(line.mealId);
    if (!meal || !meal.available) {
      throw new DomainError(ErrorCode.MEAL_UNAVAILABLE, `Meal ${line.mealId} cannot be ordered now`, {
        mealId: line.mealId,
        field: `items.${index}.mealId`,
      });
    }
    currencies.add(meal.price.currency);
    const addons = line.addons.map((wanted, addonIndex): PricedAddon => {
      const field = `items.${index}.addons.${addonIndex}`;
      const addon = meal.addons.find((candidate) => candidate.id === wanted.addonId);
      if (!addon) {
        throw new DomainError(
          ErrorCode.ADDON_NOT_ON_MEAL,
          `Add-on ${wanted.addonId} is not offered with ${meal.name}`,
          {
            mealId: meal.id,
            addonId: wanted.addonId,
            field: `${field}.addonId`,
          },
        );
      }
      if (!addon.available) {
        throw new DomainError(ErrorCode.MEAL_UNAVAILABLE, `Add-on ${addon.name} cannot be ordered now`, {
          mealId: meal.id,
          addonId: addon.id,
          field: `${field}.addonId`,
        });
      }
      if (wanted.quantity > addon.maxQuantity) {
        throw new DomainError(
          ErrorCode.QUANTITY_OUT_OF_RANGE,
          `${addon.name} may be added at most ${addon.maxQuantity} times per portion`,
          { mealId: meal.id, addonId: addon.id, max: addon.maxQuantity, field: `${field}.quantity` },
        );
      }
      currencies.add(addon.price.currency);
      return { addonId: addon.id, name: addon.name, unitPriceAmount: addon.price.amount, quantity: wanted.quantity };
    });
    const portion = meal.price.amount + addons.reduce((sum, addon) => sum + addon.unitPriceAmount * addon.quantity, 0);
    return {
      mealId: meal.id,
      mealName: meal.name,
      unitPriceAmount: meal.price.amount,
      quantity: line.quantity,
      addons,
      lineTotalAmount: portion * line.quantity,
    };
  });

  if (currencies.size !== 1) {
    throw badInput('All meals of an order must be priced in one currency', { field: 'items' });
  }
  const subtotalAmount = priced.reduce((sum, line) => sum + line.lineTotalAmount, 0);
  const totalAmount = subtotalAmount + deliveryFeeAmount;
  if (totalAmount > MAX_AMOUNT) throw badInput('The order total is too large', { field: 'items' });
  return { currency: [...currencies][0]!, lines: priced, subtotalAmount, deliveryFeeAmount, totalAmount };
}
