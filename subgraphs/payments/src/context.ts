import DataLoader from 'dataloader';
import { ChangedEntities, type Caller } from '@food/platform';
import type { Payment, PaymentsService } from './domain/payments.js';

/** What every payments resolver gets: the verified caller, the service, and per-request loaders. */
export interface SubgraphContext {
  caller: Caller;
  payments: PaymentsService;
  /** Batches Payment references: any number of them cost one database query. */
  paymentById: DataLoader<string, Payment | null>;
  /** Batches Order.payment and Order.payments: N orders cost one database query. */
  paymentsByOrderId: DataLoader<string, Payment[]>;
  /** Entities this request changed: the gateway's entity cache drops them (see reportChangedEntities). */
  changedEntities: ChangedEntities;
}

export function createContext(caller: Caller, payments: PaymentsService): SubgraphContext {
  return {
    caller,
    payments,
    paymentById: new DataLoader((ids) => payments.byIds(caller, ids)),
    paymentsByOrderId: new DataLoader((orderIds) => payments.byOrderIds(caller, orderIds)),
    changedEntities: new ChangedEntities(),
  };
}
