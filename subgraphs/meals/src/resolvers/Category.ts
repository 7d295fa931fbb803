import type { CategoryResolvers } from '../__generated__/resolvers-types.js';

export const Category: CategoryResolvers = {
  __resolveReference: ({ id }, { categoryById }) => categoryById.load(id),
  meals: (category, { first, after }, { meals }) =>
    meals.listMeals({ first, after, filter: { categoryId: category.id } }),
};
