import type { OrderResolvers } from '../__generated__/resolvers-types.js';
import { settlingPayment } from '../domain/payments.js';

export const Order: OrderResolvers = {
  // Any order id is a valid reference here: an order without payments simply has none.
  __resolveReference: ({ id }) => ({ id }),
  payment: async ({ id }, _args, { paymentsByOrderId }) => settlingPayment(await paymentsByOrderId.load(id)),
  payments: ({ id }, _args, { paymentsByOrderId }) => paymentsByOrderId.load(id),
};
