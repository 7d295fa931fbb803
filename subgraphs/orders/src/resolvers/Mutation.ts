import type { MutationResolvers } from '../__generated__/resolvers-types.js';

export const Mutation: MutationResolvers = {
  placeOrder: (_parent, { input }, { caller, orders }) => orders.placeOrder(caller, input),
};
