import DataLoader from 'dataloader';
import { ChangedEntities, type Caller } from '@food/platform';
import type { User, UsersService } from './domain/users.js';

/** What every users resolver gets: the verified caller, the service, and per-request loaders. */
export interface SubgraphContext {
  caller: Caller;
  users: UsersService;
  /** Batches entity references: N users in one query plan step cost one database query. */
  userById: DataLoader<string, User | null>;
  /** The end client's address, as the gateway saw it (absent on calls that are not a client's). */
  clientAddress?: string;
  /** Entities this request changed: the gateway's entity cache drops them (see reportChangedEntities). */
  changedEntities: ChangedEntities;
}

export function createContext(caller: Caller, users: UsersService, clientAddress?: string): SubgraphContext {
  return {
    caller,
    clientAddress,
    users,
    userById: new DataLoader((ids) => users.byIds(ids)),
    changedEntities: new ChangedEntities(),
  };
}
