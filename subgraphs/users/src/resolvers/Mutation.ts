import type { MutationResolvers } from '../__generated__/resolvers-types.js';

export const Mutation: MutationResolvers = {
  signUp: (_parent, { input }, { users }) => users.signUp(input),
  logIn: (_parent, { input }, { users, clientAddress }) => users.logIn(input, clientAddress),
  refreshSession: (_parent, { input }, { users }) => users.refreshSession(input.refreshToken),
  logOut: (_parent, _args, { caller, users }) => users.logOut(caller),
  changePassword: (_parent, { input }, { caller, users }) => users.changePassword(caller, input),
  // A changed user is dropped from the gateway's cache before the client hears of it.
  updateMyProfile: async (_parent, { input }, { caller, users, changedEntities }) => {
    const user = await users.updateProfile(caller, input);
    return changedEntities.with(user, ['User', user.id]);
  },
  setUserRole: async (_parent, { userId, role }, { caller, users, changedEntities }) => {
    const user = await users.setRole(caller, userId, role);
    return changedEntities.with(user, ['User', user.id]);
  },
};
