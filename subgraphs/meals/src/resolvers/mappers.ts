import type { Category, Meal, MealAddon, MealComponent } from '../domain/meals.js';

/** GraphQL types backed by domain types (see codegen.ts at the repository root). */
export type MealModel = Meal;
export type CategoryModel = Category;
export type MealAddonModel = MealAddon;
export type MealComponentModel = MealComponent;
