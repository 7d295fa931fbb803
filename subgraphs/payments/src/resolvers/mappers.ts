import type { Payment } from '../domain/payments.js';

/** GraphQL types backed by domain types (see codegen.ts at the repository root). */
export type PaymentModel = Payment;
/** Orders belong to the orders subgraph; here an order is only its key. */
export interface OrderModel {
  __typename?: 'Order';
  id: string;
}
