import type { ApolloServerPlugin } from '@apollo/server';
import { callerKey, type Caller, type Logger, type RedisConnection } from '@food/platform';
import { callerTag } from './rate-limit.js';
import type { GatewayContext } from '../context.js';

/** Where the gateway notes that a caller wrote: shared by every gateway replica when in Redis. */
export interface RecentWritesStore {
  note(key: string, windowMs: number): Promise<void>;
  has(key: string): Promise<boolean>;
}

export class RedisRecentWritesStore implements RecentWritesStore {
  constructor(private readonly redis: RedisConnection) {}

  async note(key: string, windowMs: number): Promise<void> {
    await this.redis.set(key, '1', 'PX', windowMs);
  }

  async has(key: string): Promise<boolean> {
    return (await this.redis.exists(key)) === 1;
  }
}

/** One process's memory (development, a single gateway). */
export class InMemoryRecentWritesStore implements RecentWritesStore {
  private readonly until = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  async note(key: string, windowMs: number): Promise<void> {
    const now = this.now();
    for (const [known, end] of this.until) if (end <= now) this.until.delete(known);
    this.until.set(key, now + windowMs);
  }

  async has(key: string): Promise<boolean> {
    return (this.until.get(key) ?? 0) > this.now();
  }
}

/**
 * Read-your-writes across read replicas, for every mutation of every subgraph. Of the two ways
 * (a window after the write, or the primary's WAL position carried back to the client) this is
 * the window: it needs nothing from clients or subgraphs' resolvers, holds on every gateway replica
 * through Redis, and has one number to reason about.
 *
 * After a caller's mutation (noted before its response leaves), and for `windowSeconds`, that
 * caller's operations go out with internal tokens saying "read from the primary". The window is the
 * services' replica lag bound: a service reads from a replica only while the replica holds every
 * write committed more than that bound ago, so once the window has passed, any replica a service
 * may choose has the caller's write. Mutations themselves, and the queries a subscription runs for
 * its events (they follow a change), always read from the primary.
 *
 * Other callers may see the write up to the bound later. An anonymous caller has no identity to note
 * (all anonymous callers share one): only its mutation itself reads from the primary. When the store
 * cannot answer (Redis away), the caller reads from the primary: slower, never stale.
 */
export class ReadYourWrites {
  private readonly windowMs: number;

  constructor(
    private readonly store: RecentWritesStore,
    windowSeconds: number,
    private readonly keyPrefix: string,
    private readonly logger: Logger,
  ) {
    this.windowMs = windowSeconds * 1_000;
  }

  async noteWrite(caller: Caller): Promise<void> {
    if (caller.kind === 'anonymous') return;
    await this.store.note(this.keyOf(caller), this.windowMs).catch((error: unknown) => {
      this.logger.warn({ err: error }, 'read-your-writes: could not note a write; its replicas may lag for the caller');
    });
  }

  async wroteRecently(caller: Caller): Promise<boolean> {
    if (caller.kind === 'anonymous') return false;
    return this.store.has(this.keyOf(caller)).catch(() => true);
  }

  /**
   * The key marking the caller's recent write, for a store that reads it in a call it makes anyway
   * (the rate limiter's, in the caller's hash tag); undefined for an anonymous caller, who has none.
   */
  markOf(caller: Caller): string | undefined {
    return caller.kind === 'user' ? this.keyOf(caller) : undefined;
  }

  private keyOf(caller: Caller): string {
    return `${this.keyPrefix}:wrote:${caller.kind === 'user' ? callerTag(caller) : callerKey(caller)}`;
  }
}

/**
 * Notes each mutation's caller. (Whether an HTTP operation reads from the primaries is decided with
 * its rate budget, in one call to Redis: edge/http-plugin.ts.)
 */
export function readYourWritesPlugin(readYourWrites: ReadYourWrites): ApolloServerPlugin<GatewayContext> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse({ contextValue, operation }) {
          if (contextValue.transport === 'http' && operation?.operation === 'mutation') {
            await readYourWrites.noteWrite(contextValue.caller);
          }
        },
      };
    },
  };
}
