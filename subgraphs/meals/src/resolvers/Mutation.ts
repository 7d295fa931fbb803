import type { MutationResolvers } from '../__generated__/resolvers-types.js';

// Changed meals are recorded once the write succeeded, so cached copies of them are dropped.
export const Mutation: MutationResolvers = {
  createCategory: (_parent, { input }, { caller, meals }) => meals.createCategory(caller, input),
  createMeal: (_parent, { input }, { caller, meals }) => meals.createMeal(caller, input),
  updateMeal: async (_parent, { id, input }, { caller, meals, changedEntities }) => {
    const meal = await meals.updateMeal(caller, id, input);
    return changedEntities.with(meal, ['Meal', meal.id]);
  },
  // A meal's add-ons are part of the cached Meal, so an add-on change is a change to its meal.
  createMealAddon: async (_parent, { input }, { caller, meals, changedEntities }) => {
    const addon = await meals.createMealAddon(caller, input);
    return changedEntities.with(addon, ['Meal', addon.mealId]);
  },
  updateMealAddon: async (_parent, { id, input }, { caller, meals, changedEntities }) => {
    const addon = await meals.updateMealAddon(caller, id, input);
    return changedEntities.with(addon, ['Meal', addon.mealId]);
  },
};
