import type { PaymentResolvers } from '../__generated__/resolvers-types.js';

export const Payment: PaymentResolvers = {
  __resolveReference: ({ id }, { paymentById }) => paymentById.load(id),
  order: (payment) => ({ __typename: 'Order', id: payment.orderId }),
  amount: (payment) => ({ amount: payment.amount, currency: payment.currency }),
};
