import type { OrderItemResolvers } from '../__generated__/resolvers-types.js';

export const OrderItem: OrderItemResolvers = {
  meal: (item) => ({ __typename: 'Meal', id: item.mealId }),
};
