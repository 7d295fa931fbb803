import type { ChangedEntities } from '@food/platform';
import type { MutationResolvers } from '../__generated__/resolvers-types.js';

/** Records that a meal changed (once the write succeeded), so cached copies of it are dropped. */
const changedMeal = <T>(changedEntities: ChangedEntities, mealId: string, value: T): T => {
  changedEntities.add('Meal', mealId);
  return value;
};

export const Mutation: MutationResolvers = {
  createCategory: (_parent, { input }, { caller, meals }) => meals.createCategory(caller, input),
  createMeal: (_parent, { input }, { caller, meals }) => meals.createMeal(caller, input),
  updateMeal: async (_parent, { id, input }, { caller, meals, changedEntities }) => {
    const meal = await meals.updateMeal(caller, id, input);
    return changedMeal(changedEntities, meal.id, meal);
  },
  // A meal's add-ons are part of the cached Meal, so an add-on change is a change to its meal.
  createMealAddon: async (_parent, { input }, { caller, meals, changedEntities }) => {
    const addon = await meals.createMealAddon(caller, input);
    return changedMeal(changedEntities, addon.mealId, addon);
  },
  updateMealAddon: async (_parent, { id, input }, { caller, meals, changedEntities }) => {
    const addon = await meals.updateMealAddon(caller, id, input);
    return changedMeal(changedEntities, addon.mealId, addon);
  },
};
