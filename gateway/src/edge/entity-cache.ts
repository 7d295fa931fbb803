import type { Counter } from 'prom-client';
import { hmgetEach, type EntityReference, type Logger, type RedisConnection } from '@food/platform';
import { sha256Hex } from './persisted-queries.js';

/** Pauses between tries of a failed invalidation: some 4 s in all, about a Redis failover's length. */
const INVALIDATION_RETRY_PAUSES_MS = [100, 300, 1_000, 3_000];

/**
 * One cached entity: a Redis hash holding its generation and one field per selection (the subgraph
 * fetch that produced it). Invalidation bumps the generation and drops the selections, so a fetch
 * that started before the change cannot write its stale answer afterwards.
 */
export interface CachedEntity {
  generation: string;
  /** The entity as the subgraph returned it for this selection, if cached and fresh. */
  value?: unknown;
}

/** One entity's entry for one answer: `key` names the entity, `field` what was asked of it (see `fieldOf`). */
export interface EntryRef {
  key: string;
  field: string;
}

export interface EntityCacheStore {
  read(entries: EntryRef[]): Promise<CachedEntity[]>;
  /** Writes each value only if its entity's generation is still the one read. */
  write(entries: (EntryRef & { generation: string; value: unknown })[], ttlMs: number): Promise<void>;
  invalidate(keys: string[], ttlMs: number): Promise<void>;
}

/** Stored values carry their own expiry: the hash's TTL is refreshed by every write, a value's is not. */
interface StoredValue {
  expiresAt: number;
  value: unknown;
}

/** Writes one entity's value if its generation is still the one read. KEYS: the entity; ARGV: generation, selection, value, ttl (ms). */
const writeScript = `
local generation = redis.call('HGET', KEYS[1], 'generation') or '0'
if generation ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'generation', generation, ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`;

/** Drops one entity's selections and bumps its generation. KEYS: the entity; ARGV: how long the generation lives (ms). */
const invalidateScript = `
local generation = tonumber(redis.call('HGET', KEYS[1], 'generation') or '0') + 1
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'generation', generation)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return generation
`;

interface EntityCacheCommands {
  foodEntityCacheWrite(
    key: string,
    generation: string,
    selection: string,
    value: string,
    ttlMs: number,
  ): Promise<number>;
  foodEntityCacheInvalidate(key: string, ttlMs: number): Promise<number>;
}

/**
 * Entities in Redis, shared by every gateway replica: one invalidation reaches them all at once.
 *
 * The entities of one fetch hash to slots all over a cluster, so every command and script touches one
 * entity (the generation check needs only that entity's atomicity) and a batch is issued as one
 * command per entity at once: on a connection that auto-pipelines (the edge's does), ioredis sends
 * them in one pipeline per node, one round trip per master a batch touches rather than per entity.
 */
export class RedisEntityCacheStore implements EntityCacheStore {
  private readonly redis: RedisConnection & EntityCacheCommands;

  constructor(redis: RedisConnection) {
    redis.defineCommand('foodEntityCacheWrite', { lua: writeScript, numberOfKeys: 1 });
    redis.defineCommand('foodEntityCacheInvalidate', { lua: invalidateScript, numberOfKeys: 1 });
    this.redis = redis as RedisConnection & EntityCacheCommands;
  }

  async read(entries: EntryRef[]): Promise<CachedEntity[]> {
    const replies = await hmgetEach(
      this.redis,
      entries.map(({ key, field }) => ({ key, fields: ['generation', field] })),
    );
    const now = Date.now();
    return replies.map(([generation, stored]) => {
      const parsed = stored ? (JSON.parse(stored) as StoredValue) : undefined;
      return { generation: generation ?? '0', value: parsed && parsed.expiresAt > now ? parsed.value : undefined };
    });
  }

  async write(entries: (EntryRef & { generation: string; value: unknown })[], ttlMs: number) {
    const expiresAt = Date.now() + ttlMs;
    await Promise.all(
      entries.map(({ key, field, generation, value }) =>
        this.redis.foodEntityCacheWrite(
          key,
          generation,
          field,
          JSON.stringify({ expiresAt, value } satisfies StoredValue),
          ttlMs,
        ),
      ),
    );
  }

  async invalidate(keys: string[], ttlMs: number): Promise<void> {
    // The generation outlives the longest fetch that could still write (a fetch is bounded by the
    // subgraph timeout, far below the TTL).
    await Promise.all(keys.map((key) => this.redis.foodEntityCacheInvalidate(key, ttlMs)));
  }
}

/** The same rules in this process's memory: the stand-in without Redis (one process only). */
export class InMemoryEntityCacheStore implements EntityCacheStore {
  private readonly entities = new Map<string, { generation: number; values: Map<string, StoredValue> }>();

  async read(entries: EntryRef[]): Promise<CachedEntity[]> {
    const now = Date.now();
    return entries.map(({ key, field }) => {
      const entity = this.entities.get(key);
      const stored = entity?.values.get(field);
      return {
        generation: String(entity?.generation ?? 0),
        value: stored && stored.expiresAt > now ? stored.value : undefined,
      };
    });
  }

  async write(entries: (EntryRef & { generation: string; value: unknown })[], ttlMs: number) {
    const expiresAt = Date.now() + ttlMs;
    for (const { key, field, generation, value } of entries) {
      let entity = this.entities.get(key);
      if (String(entity?.generation ?? 0) !== generation) continue;
      if (!entity) this.entities.set(key, (entity = { generation: 0, values: new Map() }));
      entity.values.set(field, { expiresAt, value });
    }
    this.sweep();
  }

  async invalidate(keys: string[]): Promise<void> {
    for (const key of keys) {
      const entity = this.entities.get(key);
      this.entities.set(key, { generation: (entity?.generation ?? 0) + 1, values: new Map() });
    }
  }

  private sweep(): void {
    if (this.entities.size < 50_000) return;
    const now = Date.now();
    for (const [key, entity] of this.entities) {
      for (const [selection, stored] of entity.values) if (stored.expiresAt <= now) entity.values.delete(selection);
      if (entity.values.size === 0 && entity.generation === 0) this.entities.delete(key);
    }
  }
}

/** A subgraph's answer to an `_entities` fetch, as much of it as the cache needs. */
export interface EntitiesResponse {
  data?: { _entities?: unknown[] | null } | null;
  errors?: { path?: readonly (string | number)[] }[];
  [extra: string]: unknown;
}

export interface EntityCacheOptions {
  store: EntityCacheStore;
  /** Types whose fields are the same for every caller and keyed by `id`. */
  types: ReadonlySet<string>;
  /**
   * Types keyed by `id` whose fields depend on who asks (a user's own email, say): cached
   * per caller, for queries only, and dropped for every caller when the entity changes. Only with a
   * source of changes that do not pass through the gateway (the event streams).
   */
  privateTypes: ReadonlySet<string>;
  ttlSeconds: number;
  keyPrefix: string;
  logger: Logger;
  hits: Counter<'type'>;
  misses: Counter<'type'>;
}

type Representation = { __typename: string; id: string };

/**
 * What one entity's answer depends on, besides the entity: the fetch's selection, and whatever else the
 * gateway sent in its representation (the fields a subgraph `@requires`, which other subgraphs own).
 * A required field that changed is another answer, so a miss; the entry of the old value is never read
 * again and lapses with its TTL. Representations with only `__typename` and `id` use the selection.
 */
function fieldOf(selection: string, entity: Representation): string {
  let required: Record<string, unknown> | undefined;
  for (const name in entity) {
    if (name !== '__typename' && name !== 'id') (required ??= {})[name] = (entity as Record<string, unknown>)[name];
  }
  return required ? sha256Hex(`${selection}\n${JSON.stringify(required)}`) : selection;
}

/** Whose answer a fetch is: `public` for types that read the same for everyone, else the caller's key. */
export type CacheScope = { kind: 'public' } | { kind: 'caller'; callerKey: string };

/**
 * The gateway's entity cache: `_entities` fetches for cached types are answered from Redis where
 * possible, and only the missing entities are asked of the subgraph, so a fetch whose entities are all
 * cached never reaches it. Entries are per entity and per selection (the subgraph, the fetch's query
 * and arguments, the caller for private types, and the required fields sent with the entity), live
 * for the TTL, and are dropped, every subgraph's, when a subgraph reports the entity changed or an
 * event says it did. If the store fails, fetches go to the subgraph as if nothing were cached.
 */
export class EntityCache {
  constructor(private readonly options: EntityCacheOptions) {}

  /**
   * Whose answer this fetch is, if the cache can answer it: only cacheable entities, each with an id.
   * Private types count only where `callerKey` is given (a client's query); one private entity makes
   * the whole fetch the caller's.
   */
  scopeOf(query: string, variables: Record<string, unknown> | undefined, callerKey?: string): CacheScope | undefined {
    const representations = variables?.representations;
    if (!query.includes('_entities(') || !Array.isArray(representations) || representations.length === 0) return;
    let scope: CacheScope = { kind: 'public' };
    for (const item of representations as unknown[]) {
      if (typeof item !== 'object' || item === null || typeof (item as Representation).id !== 'string') return;
      const type = (item as Representation).__typename;
      if (this.options.types.has(type)) continue;
      if (callerKey === undefined || !this.options.privateTypes.has(type)) return;
      scope = { kind: 'caller', callerKey };
    }
    return scope;
  }

  /**
   * Answers an `_entities` fetch: cached entities from the store, the rest from `fetchMissing` (called
   * with only those representations, and not at all when every entity was cached).
   */
  async resolve(
    subgraph: string,
    request: { query: string; variables: Record<string, unknown> },
    scope: CacheScope,
    fetchMissing: (representations: Representation[]) => Promise<EntitiesResponse>,
  ): Promise<EntitiesResponse> {
    const { store, logger } = this.options;
    const { representations: listed, ...fieldArguments } = request.variables;
    const representations = listed as Representation[];
    // One selection per subgraph, query text, field arguments and, for private types, caller.
    const selection = sha256Hex(
      `${subgraph}\n${request.query}\n${JSON.stringify(fieldArguments)}\n${scope.kind === 'caller' ? scope.callerKey : ''}`,
    );
    const entries = representations.map((entity) => ({ key: this.key(entity), field: fieldOf(selection, entity) }));
    let cached: CachedEntity[];
    try {
      cached = await store.read(entries);
    } catch (error) {
      logger.warn({ err: error }, 'entity cache unavailable: fetching from the subgraph');
      return fetchMissing(representations);
    }
    const missing: number[] = [];
    cached.forEach((entry, index) => {
      const type = representations[index]!.__typename;
      if (entry.value === undefined) {
        missing.push(index);
        this.options.misses.inc({ type });
      } else {
        this.options.hits.inc({ type });
      }
    });
    if (missing.length === 0) return { data: { _entities: cached.map((entry) => entry.value) } };

    const response = await fetchMissing(missing.map((index) => representations[index]!));
    const fetched = response.data?._entities;
    if (!Array.isArray(fetched) || fetched.length !== missing.length) return response;
    // Entities the subgraph could not resolve cleanly (null, or with an error) are not cached.
    const failed = new Set<number>();
    for (const error of response.errors ?? []) {
      if (error.path?.[0] === '_entities' && typeof error.path[1] === 'number') failed.add(error.path[1]);
    }
    const toWrite = missing.flatMap((index, position) =>
      fetched[position] !== null && !failed.has(position) && !response.errors?.some((error) => !error.path)
        ? [{ ...entries[index]!, generation: cached[index]!.generation, value: fetched[position] }]
        : [],
    );
    store.write(toWrite, this.options.ttlSeconds * 1000).catch((error: unknown) => {
      logger.warn({ err: error }, 'entity cache write failed');
    });

    const entities = cached.map((entry) => entry.value);
    missing.forEach((index, position) => (entities[index] = fetched[position]));
    return {
      ...response,
      data: { ...response.data, _entities: entities },
      // The subgraph numbered its errors by its own (shorter) list; renumber them by the client's.
      errors: response.errors?.map((error) =>
        error.path?.[0] === '_entities' && typeof error.path[1] === 'number'
          ? { ...error, path: ['_entities', missing[error.path[1]]!, ...error.path.slice(2)] }
          : error,
      ),
    };
  }

  /**
   * Drops every cached answer about these entities, from every subgraph (one that `@requires` a
   * changed field depended on it too) and for every caller, on every replica.
   */
  async invalidate(entities: EntityReference[]): Promise<void> {
    const keys = entities
      .filter((entity) => this.options.types.has(entity.__typename) || this.options.privateTypes.has(entity.__typename))
      .map((entity) => this.key(entity));
    if (keys.length === 0) return;
    // A failed invalidation leaves a stale entry for up to the TTL, so it is tried again across the
    // few seconds a Redis failover takes (commands to a moving slot fail meanwhile) before giving up.
    for (let attempt = 0; ; attempt++) {
      try {
        await this.options.store.invalidate(keys, Math.max(this.options.ttlSeconds * 1000, 60_000));
        return;
      } catch (error) {
        const pauseMs = INVALIDATION_RETRY_PAUSES_MS[attempt];
        if (pauseMs === undefined) {
          this.options.logger.error({ err: error, entities }, 'entity cache invalidation failed');
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, pauseMs));
      }
    }
  }

  /** One hash per entity, whichever subgraphs answered about it: one invalidation reaches them all. */
  private key(entity: Representation): string {
    return `${this.options.keyPrefix}:entity:${entity.__typename}:${entity.id}`;
  }
}
