import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * Where the reads of the work in progress may go: `replica` lets a database read go to a replica
 * (a little stale, within the lag bound); `primary` must see every committed write.
 *
 * Outside any request scope (workers, the outbox relay, start-up) reads go to the primary: only a
 * subgraph request whose internal token allows it reads from a replica. A worker that moves an order
 * on a payment event must see the order the request before it wrote, so staleness is opt-in.
 */
export type ReadConsistency = 'primary' | 'replica';

const scope = new AsyncLocalStorage<ReadConsistency>();

/** Runs `work` (and everything it starts) with the given read consistency. */
export function withReadConsistency<T>(consistency: ReadConsistency, work: () => T): T {
  return scope.run(consistency, work);
}

/** Whether a database read made now may be served by a replica. */
export const replicaReadsAllowed = (): boolean => scope.getStore() === 'replica';

/** Whether the work in progress must read from the primary (and ask the services it calls to). */
export const readsFromPrimary = (): boolean => scope.getStore() === 'primary';
