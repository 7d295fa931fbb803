import type { Caller } from '@food/platform';
import type { Spend } from './edge/operation-guard.js';

/** Per-request state of the gateway: who is calling, from where, and the id that follows the request. */
export interface GatewayContext {
  caller: Caller;
  requestId: string;
  /** The client's address (after trusted proxies): the key of its per-address rate budgets. */
  clientAddress: string;
  /**
   * `http` for a client's query or mutation; for the queries the gateway runs to resolve a
   * subscription's events (guarded once, when the subscription started), the transport the
   * subscription came over: `websocket` (graphql-ws), `sse` or `multipart` (HTTP).
   */
  transport: 'http' | 'websocket' | 'sse' | 'multipart';
  /**
   * Set once the operation is known (edge/read-your-writes.ts): whether the subgraphs must read
   * from their primaries for this request. Unset (not an HTTP operation yet) counts as yes.
   */
  readFromPrimary?: boolean;
  /** The rate budget this request already spent, on the response cache's path (HTTP queries only). */
  rateBudgetSpent?: Spend;
  /** Set by the executor when the response may be kept by the response cache: for whom, and its entities. */
  keep?: { scope: 'PUBLIC' | 'PRIVATE'; tags: string[]; mark: number };
}
