import type { Order } from '../domain/orders.js';
import type { MutationResolvers } from '../__generated__/resolvers-types.js';

/** An order changed: the order, and its customer's `User.orders`, are dropped from the gateway's cache. */
const changedOrder = (order: Order): [string, string][] => [
  ['Order', order.id],
  ['User', order.customerId],
];

export const Mutation: MutationResolvers = {
  placeOrder: async (_parent, { input }, { caller, orders, changedEntities }) => {
    const order = await orders.placeOrder(caller, input);
    return changedEntities.with(order, ...changedOrder(order));
  },
  changeOrderStatus: async (_parent, { input }, { caller, orders, changedEntities }) => {
    const order = await orders.changeOrderStatus(caller, input);
    return changedEntities.with(order, ...changedOrder(order));
  },
  cancelOrder: async (_parent, { input }, { caller, orders, changedEntities }) => {
    const order = await orders.cancelOrder(caller, input);
    return changedEntities.with(order, ...changedOrder(order));
  },
};
