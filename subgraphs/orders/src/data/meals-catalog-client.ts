import { z } from 'zod';
import { DomainError, ErrorCode, type ServiceClient } from '@food/platform';
import type { MealCatalog } from '../domain/orders.js';
import type { MenuMeal } from '../domain/pricing.js';

export const MEALS_BY_IDS_QUERY = `query ($ids: [ID!]!) { mealsByIds(ids: $ids) { id name available price { amount currency } addons { id name available maxQuantity price { amount currency } } } }`;

const ZMoney = z.object({ amount: z.number().int(), currency: z.string().length(3) });
const MealsResponse = z.object({
  mealsByIds: z.array(
    z
      .object({
        id: z.string(),
        name: z.string(),
        available: z.boolean(),
        price: ZMoney,
        addons: z.array(
          z.object({
            id: z.string(),
            name: z.string(),
            available: z.boolean(),
            maxQuantity: z.number().int(),
            price: ZMoney,
          }),
        ),
      })
      .nullable(),
  ),
});

/** Reads today's menu from the meals subgraph, signed as the orders service. */
export class MealsCatalogClient implements MealCatalog {
  constructor(private readonly meals: Pick<ServiceClient, 'request'>) {}

  async findMeals(ids: readonly string[]): Promise<Map<string, MenuMeal>> {
    if (ids.length === 0) return new Map();
    let data: unknown;
    try {
      data = await this.meals.request<unknown>(MEALS_BY_IDS_QUERY, { ids: [...ids] });
    } catch (error) {
      if (error instanceof DomainError && error.code === ErrorCode.UPSTREAM_UNAVAILABLE) {
        // Its details carry the network error, which may name internal hosts.
        throw new DomainError(ErrorCode.UPSTREAM_UNAVAILABLE, error.message);
      }
      // Anything else (ServiceCallError names internal URLs): the client only learns meals did not answer.
      throw new DomainError(ErrorCode.UPSTREAM_UNAVAILABLE, 'The meals service could not answer');
    }
    const parsed = MealsResponse.safeParse(data);
    if (!parsed.success) {
      throw new DomainError(ErrorCode.UPSTREAM_UNAVAILABLE, 'The meals service answered in an unexpected shape');
    }
    return new Map(
      parsed.data.mealsByIds.filter((meal) => meal !== null).map((meal): [string, MenuMeal] => [meal.id, meal]),
    );
  }
}
