import type { QueryResolvers } from '../__generated__/resolvers-types.js';

export const Query: QueryResolvers = {
  order: (_parent, { id }, { caller, orders }) => orders.getOrder(caller, id),
  myOrders: (_parent, { first, after }, { caller, orders }) => orders.myOrders(caller, first, after),
  kitchenQueue: (_parent, { statuses, first, after }, { caller, orders }) =>
    orders.kitchenQueue(caller, statuses, first, after),
};
