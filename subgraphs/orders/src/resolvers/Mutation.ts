import type { MutationResolvers } from '../__generated__/resolvers-types.js';

export const Mutation: MutationResolvers = {
  placeOrder: (_parent, { input }, { caller, orders }) => orders.placeOrder(caller, input),
  changeOrderStatus: (_parent, { input }, { caller, orders }) => orders.changeOrderStatus(caller, input),
  cancelOrder: (_parent, { input }, { caller, orders }) => orders.cancelOrder(caller, input),
};
