import type { KitchenQueueConnectionResolvers } from '../__generated__/resolvers-types.js';

export const KitchenQueueConnection: KitchenQueueConnectionResolvers = {
  // Counted only when asked for, over the statuses of the page's query.
  counts: ({ statuses }, _args, { caller, orders }) => orders.kitchenQueueCounts(caller, statuses),
};
