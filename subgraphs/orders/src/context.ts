import DataLoader from 'dataloader';
import { ChangedEntities, type Caller } from '@food/platform';
import type { Order, OrderItem, OrdersService, OrderStatusChange } from './domain/orders.js';

/** What every orders resolver gets: the verified caller, the service, and per-request loaders. */
export interface SubgraphContext {
  caller: Caller;
  orders: OrdersService;
  /** Batches Order references: any number of them cost one database query. */
  orderById: DataLoader<string, Order | null>;
  /** Batches Order.items over a page of orders (keyed by order: lines take its currency). */
  itemsOfOrder: DataLoader<Order, OrderItem[], string>;
  /** Batches Order.statusHistory over a page of orders. */
  historyOfOrder: DataLoader<string, OrderStatusChange[]>;
  /** Entities this request changed: the gateway's entity cache drops them (see reportChangedEntities). */
  changedEntities: ChangedEntities;
}

export function createContext(caller: Caller, orders: OrdersService): SubgraphContext {
  return {
    caller,
    orders,
    orderById: new DataLoader((ids) => orders.byIds(caller, ids)),
    itemsOfOrder: new DataLoader((list) => orders.itemsOf(list), { cacheKeyFn: (order) => order.id }),
    historyOfOrder: new DataLoader((ids) => orders.historyOf(ids)),
    changedEntities: new ChangedEntities(),
  };
}
