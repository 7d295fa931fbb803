import type { Order, OrderItem, OrderItemAddon, OrdersService, OrderStatusChange } from '../domain/orders.js';

/** GraphQL types backed by domain types (see codegen.ts at the repository root). */
export type OrderModel = Order;
export type OrderItemModel = OrderItem;
export type OrderItemAddonModel = OrderItemAddon;
export type OrderStatusChangeModel = OrderStatusChange;
/** A page of the kitchen's queue, with the statuses asked for: its `counts` are read only when selected. */
export type KitchenQueueConnectionModel = Awaited<ReturnType<OrdersService['kitchenQueue']>>;
/** Users belong to the users subgraph; here a user is only its key. */
export interface UserModel {
  __typename?: 'User';
  id: string;
}
/** Meals belong to the meals subgraph; here a meal is only its key. */
export interface MealModel {
  __typename?: 'Meal';
  id: string;
}
