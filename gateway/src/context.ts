import type { Caller } from '@food/platform';

/** Per-request state of the gateway: who is calling, and the id that follows the request everywhere. */
export interface GatewayContext {
  caller: Caller;
  requestId: string;
}
