import type { MutationResolvers } from '../__generated__/resolvers-types.js';

export const Mutation: MutationResolvers = {
  // A new or settled payment changes its order's `payment` and `payments` in the gateway's cache.
  payForOrder: async (_parent, { input }, { caller, payments, changedEntities }) => {
    const payment = await payments.payForOrder(caller, input);
    return changedEntities.with(payment, ['Order', payment.orderId], ['Payment', payment.id]);
  },
};
