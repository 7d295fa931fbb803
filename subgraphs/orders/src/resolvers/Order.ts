import type { OrderResolvers } from '../__generated__/resolvers-types.js';

export const Order: OrderResolvers = {
  // Same visibility as Query.order: a reference to someone else's order resolves to null.
  __resolveReference: ({ id }, { orderById }) => orderById.load(id),
  customer: (order) => ({ __typename: 'User', id: order.customerId }),
  items: (order, _args, { itemsOfOrder }) => itemsOfOrder.load(order),
  statusHistory: (order, _args, { historyOfOrder }) => historyOfOrder.load(order.id),
};
