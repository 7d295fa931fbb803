import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { RedisConnection } from '@food/platform';
import { z } from 'zod';
import { ConfigError, ErrorCode, type Logger } from '@food/platform';
import { GraphQLError } from '../graphql-js.js';

/** How the gateway treats persisted queries (PERSISTED_QUERIES). */
export type PersistedQueriesMode = 'apq' | 'safelist' | 'off';

/** Apollo Server's cache interface for persisted queries (`@apollo/utils.keyvaluecache`), structurally. */
export interface PersistedQueryCache {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string, options?: { ttl?: number | null }): Promise<void>;
  delete(key: string): Promise<boolean | void>;
}

export const sha256Hex = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * Automatic persisted queries in Redis: a query registered through one replica is known to all, so a
 * client's hash-only request works whichever replica it reaches. Cache failures count as misses (the
 * client then sends the full query), never as errors.
 */
export class RedisPersistedQueryCache implements PersistedQueryCache {
  constructor(
    private readonly redis: RedisConnection,
    private readonly keyPrefix: string,
    private readonly logger: Logger,
  ) {}

  async get(hash: string): Promise<string | undefined> {
    try {
      return (await this.redis.get(this.key(hash))) ?? undefined;
    } catch (error) {
      this.logger.warn({ err: error }, 'persisted query cache unavailable');
      return undefined;
    }
  }

  async set(hash: string, query: string, options?: { ttl?: number | null }): Promise<void> {
    try {
      if (options?.ttl) await this.redis.set(this.key(hash), query, 'EX', options.ttl);
      else await this.redis.set(this.key(hash), query);
    } catch (error) {
      this.logger.warn({ err: error }, 'persisted query cache unavailable');
    }
  }

  async delete(hash: string): Promise<boolean> {
    return (await this.redis.del(this.key(hash))) > 0;
  }

  private key(hash: string): string {
    return `${this.keyPrefix}:apq:${hash}`;
  }
}

/** Apollo's persisted query manifest (what `@apollo/generate-persisted-query-manifest` writes). */
const ManifestSchema = z.object({
  format: z.literal('apollo-persisted-query-manifest'),
  version: z.literal(1),
  operations: z.array(
    z.object({
      id: z.string().regex(/^[0-9a-f]{64}$/, 'must be the sha256 hex digest of the body'),
      name: z.string().optional(),
      type: z.enum(['query', 'mutation', 'subscription']).optional(),
      body: z.string().min(1),
    }),
  ),
});

/**
 * The operations a safelisted gateway accepts: the frontend's own, registered from a manifest file.
 * A client may send one by its id alone (the APQ hash) or in full; anything else is refused.
 */
export class OperationSafelist implements PersistedQueryCache {
  private readonly bodies = new Map<string, string>();

  constructor(operations: { id: string; body: string }[]) {
    for (const { id, body } of operations) this.bodies.set(id, body);
  }

  static fromFile(path: string): OperationSafelist {
    let parsed: z.infer<typeof ManifestSchema>;
    try {
      parsed = ManifestSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
    } catch (error) {
      const reason = error instanceof z.ZodError ? z.prettifyError(error) : (error as Error).message;
      throw new ConfigError(`gateway: PERSISTED_QUERIES_MANIFEST ${path} is not a persisted query manifest: ${reason}`);
    }
    for (const operation of parsed.operations) {
      if (sha256Hex(operation.body) !== operation.id) {
        throw new ConfigError(
          `gateway: PERSISTED_QUERIES_MANIFEST ${path}: operation ${operation.name ?? operation.id} has an id that is not the sha256 of its body`,
        );
      }
    }
    return new OperationSafelist(parsed.operations);
  }

  get size(): number {
    return this.bodies.size;
  }

  /** Refuses a document that is not on the list. */
  check(source: string): GraphQLError | undefined {
    if (this.bodies.has(sha256Hex(source))) return undefined;
    return new GraphQLError(
      'This operation is not in the persisted query list: only registered operations are accepted',
      {
        extensions: { code: ErrorCode.PERSISTED_QUERY_NOT_IN_LIST },
      },
    );
  }

  /** The body for an id (Apollo Server's APQ lookup, which prefixes every key it asks for with `apq:`). */
  async get(key: string): Promise<string | undefined> {
    return this.bodies.get(key.replace(/^apq:/, ''));
  }

  /** Clients cannot register operations: the list is the file. */
  async set(): Promise<void> {}

  async delete(): Promise<boolean> {
    return false;
  }
}
