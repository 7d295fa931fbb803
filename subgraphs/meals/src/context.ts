import DataLoader from 'dataloader';
import { ChangedEntities, type Caller } from '@food/platform';
import type { Category, Meal, MealAddon, MealComponent, MealsService } from './domain/meals.js';

/** What every meals resolver gets: the verified caller, the service, and per-request loaders. */
export interface SubgraphContext {
  caller: Caller;
  meals: MealsService;
  /** Batches Meal references: any number of them cost one database query. */
  mealById: DataLoader<string, Meal | null>;
  /** Batches Meal.category and Category references: one query per request step. */
  categoryById: DataLoader<string, Category | null>;
  /** Batches Meal.addons for a page of meals; keyed by meal so add-ons get its currency. */
  addonsByMeal: DataLoader<Meal, MealAddon[], string>;
  /** Batches Meal.components and Meal.allergens for a page of meals. */
  componentsByMealId: DataLoader<string, MealComponent[]>;
  /** Meals this request changed: the gateway's entity cache drops them (see reportChangedEntities). */
  changedEntities: ChangedEntities;
}

export function createContext(caller: Caller, meals: MealsService): SubgraphContext {
  return {
    caller,
    meals,
    mealById: new DataLoader((ids) => meals.byIds(ids)),
    categoryById: new DataLoader((ids) => meals.categoriesByIds(ids)),
    addonsByMeal: new DataLoader((list) => meals.addonsOf(list), { cacheKeyFn: (meal) => meal.id }),
    componentsByMealId: new DataLoader((ids) => meals.componentsOf(ids)),
    changedEntities: new ChangedEntities(),
  };
}
