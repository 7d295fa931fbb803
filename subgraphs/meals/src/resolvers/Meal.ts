import { notFound } from '@food/platform';
import type { MealAddonResolvers, MealResolvers } from '../__generated__/resolvers-types.js';
import { allergensOf } from '../domain/meals.js';

export const Meal: MealResolvers = {
  __resolveReference: ({ id }, { mealById }) => mealById.load(id),
  price: (meal) => ({ amount: meal.priceAmount, currency: meal.currency }),
  category: async (meal, _args, { categoryById }) => {
    const category = await categoryById.load(meal.categoryId);
    // The foreign key makes this impossible; say so plainly rather than return null for a non-null field.
    if (!category) throw notFound('Category', meal.categoryId);
    return category;
  },
  addons: (meal, _args, { addonsByMeal }) => addonsByMeal.load(meal),
  components: (meal, _args, { componentsByMealId }) => componentsByMealId.load(meal.id),
  allergens: async (meal, _args, { componentsByMealId }) => allergensOf(await componentsByMealId.load(meal.id)),
};

export const MealAddon: MealAddonResolvers = {
  price: (addon) => ({ amount: addon.priceAmount, currency: addon.currency }),
};
