import type { MutationResolvers } from '../__generated__/resolvers-types.js';

export const Mutation: MutationResolvers = {
  signUp: (_parent, { input }, { users }) => users.signUp(input),
  logIn: (_parent, { input }, { users }) => users.logIn(input),
  updateMyProfile: (_parent, { input }, { caller, users }) => users.updateProfile(caller, input),
  setUserRole: (_parent, { userId, role }, { caller, users }) => users.setRole(caller, userId, role),
};
