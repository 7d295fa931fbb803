import type { QueryResolvers } from '../__generated__/resolvers-types.js';

export const Query: QueryResolvers = {
  meals: (_parent, args, { meals }) => meals.listMeals(args),
  meal: (_parent, { id }, { meals }) => meals.meal(id),
  mealsByIds: (_parent, { ids }, { meals }) => meals.mealsByIds(ids),
  categories: (_parent, _args, { meals }) => meals.categories(),
};
