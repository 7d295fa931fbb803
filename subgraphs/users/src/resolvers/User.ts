import type { UserResolvers } from '../__generated__/resolvers-types.js';
import type { SubgraphContext } from '../context.js';
import type { User as UserModel } from '../domain/users.js';

/** Personal fields resolve to null for anyone but the user and staff. */
const personal =
  (field: 'email' | 'phone' | 'deliveryAddress') =>
  (user: UserModel, _args: unknown, { caller, users }: SubgraphContext) =>
    users.canSeePersonalData(caller, user) ? user[field] : null;

export const User: UserResolvers = {
  __resolveReference: ({ id }, { userById }) => userById.load(id),
  email: personal('email'),
  phone: personal('phone'),
  deliveryAddress: personal('deliveryAddress'),
};
