import type { Resolvers } from '../__generated__/resolvers-types.js';
import { DateTime } from '@food/platform';
import { Category } from './Category.js';
import { Meal, MealAddon } from './Meal.js';
import { Mutation } from './Mutation.js';
import { Query } from './Query.js';

export const resolvers: Resolvers = { DateTime, Query, Mutation, Meal, MealAddon, Category };
