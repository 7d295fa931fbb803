import type { QueryResolvers } from '../__generated__/resolvers-types.js';

export const Query: QueryResolvers = {
  payment: (_parent, { id }, { caller, payments }) => payments.payment(caller, id),
};
