/** Every status an order can have, as stored and as the contract names them. */
export const ORDER_STATUSES = [
  'PENDING_PAYMENT',
  'PAID',
  'ACCEPTED',
  'PREPARING',
  'READY',
  'OUT_FOR_DELIVERY',
  'DELIVERED',
  'CANCELLED',
  'PAYMENT_FAILED',
  'REFUNDED',
] as const;

export type OrderStatus = (typeof ORDER_STATUSES)[number];

/** Every order starts here; the transitions after it come with the state machine. */
export const INITIAL_ORDER_STATUS: OrderStatus = 'PENDING_PAYMENT';
