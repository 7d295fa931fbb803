import type { MutationResolvers } from '../__generated__/resolvers-types.js';

export const Mutation: MutationResolvers = {
  createCategory: (_parent, { input }, { caller, meals }) => meals.createCategory(caller, input),
  createMeal: (_parent, { input }, { caller, meals }) => meals.createMeal(caller, input),
  updateMeal: (_parent, { id, input }, { caller, meals }) => meals.updateMeal(caller, id, input),
  createMealAddon: (_parent, { input }, { caller, meals }) => meals.createMealAddon(caller, input),
  updateMealAddon: (_parent, { id, input }, { caller, meals }) => meals.updateMealAddon(caller, id, input),
};
