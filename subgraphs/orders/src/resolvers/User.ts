import type { UserResolvers } from '../__generated__/resolvers-types.js';

export const User: UserResolvers = {
  // Any user id is a valid reference here: a user without orders simply has none.
  __resolveReference: ({ id }) => ({ id }),
  orders: ({ id }, { first, after }, { caller, orders }) => orders.ordersOfUser(caller, id, first, after),
};
