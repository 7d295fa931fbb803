import type { MutationResolvers } from '../__generated__/resolvers-types.js';

export const Mutation: MutationResolvers = {
  payForOrder: (_parent, { input }, { caller, payments }) => payments.payForOrder(caller, input),
};
