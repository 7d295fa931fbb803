import type { Supergraph } from '@apollo/federation-internals';
import type {
  DocumentNode,
  FieldNode,
  FragmentDefinitionNode,
  GraphQLCompositeType,
  GraphQLSchema,
  OperationDefinitionNode,
  SelectionNode,
  SelectionSetNode,
} from 'graphql';
import { LRUCache } from 'lru-cache';
import type { Counter } from 'prom-client';
import type { EntityReference } from '@food/platform';
import { getNamedType, isAbstractType, isCompositeType, isNonNullType, isObjectType, Kind } from '../graphql-js.js';
import { entityTag } from '../execution/response-shape.js';
import { cacheScopesOf, type CacheScope } from './cache-control.js';

/**
 * Whole responses, kept in this process's memory and answered again to the same request of the same
 * audience, until an entity in them changes. The rules are the entity cache's (edge/entity-cache.ts):
 * what a response may hold and who may see it again come from the subgraphs' `@cacheControl`
 * declarations, and it is dropped when a subgraph reports an entity in it changed or an event says
 * so; the TTL bounds what no event names.
 *
 * - **What is kept.** Queries whose root fields each return one entity of a declared type (`me`,
 *   `order(id:)`): everything below such a root hangs off entities, and a change to anything in it is
 *   announced as a change of one of them (an order's new payment is a change of the order; a
 *   customer's new order a change of the customer). A root list (the menu, a connection) is not kept:
 *   no event names its membership. Answers with errors are not kept.
 * - **When.** From the third time a request is made (for the same audience): its second answer is
 *   kept, not its first, so what is asked once is never copied.
 * - **Who sees it again.** The caller alone, if any entity in it is of a PRIVATE type or of a type
 *   that declares nothing; everyone, if all of them are PUBLIC. A caller that wrote within the replica
 *   lag bound is not answered from the cache (read-your-writes), and always hears its own writes.
 * - **What drops it.** Each response is tagged with every entity in it (the planner is asked for
 *   each entity's `id`, which the client does not see unless it asked), and a change to any of them
 *   drops it. A response whose request started before a change to one of its entities is not kept.
 */

/** The supergraph's facts the response cache needs: declared scopes, and which types are entities keyed by `id`. */
export interface ResponseCacheRules {
  scopes: Record<CacheScope, ReadonlySet<string>>;
  /** Types with a `@key` in some subgraph. */
  entities: ReadonlySet<string>;
  /** Entity types one of whose keys is `id` alone: their responses can be tagged and dropped. */
  idEntities: ReadonlySet<string>;
}

export function responseCacheRulesOf(supergraph: Supergraph): ResponseCacheRules {
  const entities = new Set<string>();
  const idEntities = new Set<string>();
  for (const subgraph of supergraph.subgraphs()) {
    const keyDirective = subgraph.metadata().keyDirective();
    for (const type of [...subgraph.schema.objectTypes(), ...subgraph.schema.interfaceTypes()]) {
      for (const key of type.appliedDirectivesOf(keyDirective)) {
        entities.add(type.name);
        if (key.arguments().fields.trim() === 'id') idEntities.add(type.name);
      }
    }
  }
  return { scopes: cacheScopesOf(supergraph), entities, idEntities };
}

/** How an operation's response may be kept: for whom, and the document to plan (with the entities' ids). */
export interface ResponseCachePlan {
  scope: CacheScope;
  document: DocumentNode;
  operation: OperationDefinitionNode;
}

/**
 * Whether `operation`'s responses may be kept, and if so for whom; its document with `id` (and
 * `__typename` where the type is abstract) selected on every entity, for the plan to fetch, so each
 * response can be tagged with its entities. Undefined when it may not be kept.
 */
export function responseCachePlanOf(
  rules: ResponseCacheRules,
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
): ResponseCachePlan | undefined {
  if (operation.operation !== 'query') return undefined;
  const root = schema.getQueryType();
  if (!root) return undefined;
  const fragments = new Map(
    document.definitions.flatMap((d) => (d.kind === Kind.FRAGMENT_DEFINITION ? [[d.name.value, d] as const] : [])),
  );
  // Root fields: each one entity of a declared type (a list's membership is named by no event), and
  // at least one.
  const rootFields = fieldsOf(operation.selectionSet, fragments).filter((field) => field.name.value !== '__typename');
  if (rootFields.length === 0) return undefined;
  for (const field of rootFields) {
    const type = root.getFields()[field.name.value]?.type;
    if (!type) return undefined;
    const nullable = isNonNullType(type) ? type.ofType : type;
    if (!isObjectType(nullable) || !rules.idEntities.has(nullable.name)) return undefined;
    if (!rules.scopes.PUBLIC.has(nullable.name) && !rules.scopes.PRIVATE.has(nullable.name)) return undefined;
  }
  let scope: CacheScope = 'PUBLIC';
  let refused = false;
  const seeType = (type: GraphQLCompositeType) => {
    const candidates = isAbstractType(type) ? schema.getPossibleTypes(type) : [type];
    for (const candidate of candidates) {
      if (!rules.entities.has(candidate.name)) continue;
      if (!rules.idEntities.has(candidate.name)) refused = true;
      if (!rules.scopes.PUBLIC.has(candidate.name)) scope = 'PRIVATE';
    }
  };
  /** The selection with the entities' ids added; fragments are rewritten where they are defined. */
  const augment = (selectionSet: SelectionSetNode, type: GraphQLCompositeType): SelectionSetNode => {
    seeType(type);
    const selections = selectionSet.selections.map((selection): SelectionNode => {
      if (selection.kind === Kind.FIELD) {
        if (selection.name.value === '__schema' || selection.name.value === '__type') refused = true;
        if (!selection.selectionSet || !('getFields' in type)) return selection;
        const fieldType = type.getFields()[selection.name.value]?.type;
        const named = fieldType && getNamedType(fieldType);
        if (!named || !isCompositeType(named)) return selection;
        return { ...selection, selectionSet: augment(selection.selectionSet, named) };
      }
      if (selection.kind === Kind.INLINE_FRAGMENT) {
        const condition = selection.typeCondition
          ? (schema.getType(selection.typeCondition.name.value) as GraphQLCompositeType | undefined)
          : type;
        return condition ? { ...selection, selectionSet: augment(selection.selectionSet, condition) } : selection;
      }
      return selection;
    });
    const added: SelectionNode[] = [];
    const keys = responseKeys(selections, fragments);
    const wants = (key: string, field: string) => {
      const existing = keys.get(key);
      if (existing === undefined) return true;
      if (existing !== field) refused = true;
      return false;
    };
    if (isAbstractType(type)) {
      if (wants('__typename', '__typename')) added.push(fieldNode('__typename'));
      for (const candidate of schema.getPossibleTypes(type)) {
        if (rules.idEntities.has(candidate.name) && wants('id', 'id')) {
          added.push({
            kind: Kind.INLINE_FRAGMENT,
            typeCondition: { kind: Kind.NAMED_TYPE, name: { kind: Kind.NAME, value: candidate.name } },
            selectionSet: { kind: Kind.SELECTION_SET, selections: [fieldNode('id')] },
          });
        }
      }
    } else if (rules.idEntities.has(type.name) && wants('id', 'id')) {
      added.push(fieldNode('id'));
    }
    return { ...selectionSet, selections: [...selections, ...added] };
  };
  const augmentedOperation: OperationDefinitionNode = {
    ...operation,
    selectionSet: augment(operation.selectionSet, root),
  };
  const definitions = document.definitions.map((definition) => {
    if (definition === operation) return augmentedOperation;
    if (definition.kind !== Kind.FRAGMENT_DEFINITION) return definition;
    const type = schema.getType(definition.typeCondition.name.value);
    return type && isCompositeType(type)
      ? ({ ...definition, selectionSet: augment(definition.selectionSet, type) } satisfies FragmentDefinitionNode)
      : definition;
  });
  if (refused) return undefined;
  return { scope, document: { ...document, definitions }, operation: augmentedOperation };
}

const fieldNode = (name: string): FieldNode => ({ kind: Kind.FIELD, name: { kind: Kind.NAME, value: name } });

/** The fields of a selection set, fragments (inline and named) inlined. */
function fieldsOf(selectionSet: SelectionSetNode, fragments: ReadonlyMap<string, FragmentDefinitionNode>): FieldNode[] {
  const fields: FieldNode[] = [];
  const walk = (set: SelectionSetNode, seen: ReadonlySet<string>) => {
    for (const selection of set.selections) {
      if (selection.kind === Kind.FIELD) fields.push(selection);
      else if (selection.kind === Kind.INLINE_FRAGMENT) walk(selection.selectionSet, seen);
      else if (!seen.has(selection.name.value)) {
        const fragment = fragments.get(selection.name.value);
        if (fragment) walk(fragment.selectionSet, new Set([...seen, selection.name.value]));
      }
    }
  };
  walk(selectionSet, new Set());
  return fields;
}

/** Each response key at this level (fragments inlined) and the field it names. */
function responseKeys(
  selections: readonly SelectionNode[],
  fragments: ReadonlyMap<string, FragmentDefinitionNode>,
): Map<string, string> {
  const keys = new Map<string, string>();
  for (const field of fieldsOf({ kind: Kind.SELECTION_SET, selections }, fragments)) {
    keys.set(field.alias?.value ?? field.name.value, field.name.value);
  }
  return keys;
}

/** One kept response. */
export interface CachedResponse {
  /** The response body as sent. */
  body: Buffer;
  operationName: string | undefined;
  /** `entity:<type>:<id>` for each entity in it. */
  tags: readonly string[];
}

export interface ResponseCacheOptions {
  /** Memory the kept responses (bodies and keys) may take, in bytes. */
  maxBytes: number;
  ttlSeconds: number;
  hits: Counter<'scope'>;
  misses: Counter;
  stores: Counter<'scope'>;
  invalidations: Counter;
}

/** How many tags' last invalidations are remembered (to refuse responses a change overtook). */
const INVALIDATION_MEMORY = 100_000;
/** Requests seen once, remembered so the second answer of one is kept (bytes of their keys). */
const SEEN_ONCE_BYTES = 8 * 1024 * 1024;

/** The response cache's store: an LRU by bytes, each entry tagged with its entities. */
export class ResponseCache {
  private readonly entries: LRUCache<string, CachedResponse>;
  /** Entry keys by tag. */
  private readonly byTag = new Map<string, Set<string>>();
  /** A change counter: each invalidation takes the next number, remembered per tag. */
  private sequence = 0;
  private readonly invalidatedAt = new LRUCache<string, number>({ max: INVALIDATION_MEMORY });
  /** Answers begun before this mark are not kept (set by `clear`). */
  private everythingBefore = 0;
  /**
   * Admission: an answer is kept the second time its request (for its audience) is answered within
   * the TTL, not the first, so a request made once (a customer seen once) costs no copy, no memory
   * and no eviction of answers asked for again.
   */
  private readonly seenOnce: LRUCache<string, true>;

  constructor(private readonly options: ResponseCacheOptions) {
    this.entries = new LRUCache<string, CachedResponse>({
      maxSize: options.maxBytes,
      sizeCalculation: (entry, key) => entry.body.length + key.length * 2 + 64 * (entry.tags.length + 1),
      ttl: options.ttlSeconds * 1_000,
      // An expired entry is not served; it leaves the tag index when evicted or read.
      dispose: (entry, key) => this.unindex(key, entry),
    });
    this.seenOnce = new LRUCache<string, true>({
      maxSize: SEEN_ONCE_BYTES,
      sizeCalculation: (_, key) => key.length * 2 + 32,
      ttl: options.ttlSeconds * 1_000,
    });
  }

  /** Where a request starts: a response it produces is kept only if none of its entities changed since. */
  mark(): number {
    return this.sequence;
  }

  /** The response kept for `request` (its key) and this caller (`callerKey`), or one kept for everyone. */
  get(request: string, callerKey: string): CachedResponse | undefined {
    const own = this.entries.get(`${callerKey}\u0000${request}`);
    if (own) {
      this.options.hits.inc({ scope: 'PRIVATE' });
      return own;
    }
    const shared = this.entries.get(`*\u0000${request}`);
    if (shared) {
      this.options.hits.inc({ scope: 'PUBLIC' });
      return shared;
    }
    this.options.misses.inc();
    return undefined;
  }

  /**
   * Keeps `response` for `request`: for `callerKey` alone, or (PUBLIC) for everyone. Refused when an
   * entity in it changed after `mark` (the request may have read it before the change).
   */
  set(request: string, scope: CacheScope, callerKey: string, response: CachedResponse, mark: number): boolean {
    if (mark < this.everythingBefore) return false;
    for (const tag of response.tags) if ((this.invalidatedAt.get(tag) ?? -1) >= mark) return false;
    const key = `${scope === 'PUBLIC' ? '*' : callerKey}\u0000${request}`;
    if (!this.seenOnce.has(key)) {
      this.seenOnce.set(key, true);
      return false;
    }
    this.entries.set(key, response);
    if (!this.entries.has(key)) return false;
    for (const tag of response.tags) {
      let keys = this.byTag.get(tag);
      if (!keys) this.byTag.set(tag, (keys = new Set()));
      keys.add(key);
    }
    this.options.stores.inc({ scope });
    return true;
  }

  /** Drops every response that holds one of these entities. */
  invalidate(entities: readonly EntityReference[]): void {
    const sequence = this.sequence++;
    for (const { __typename, id } of entities) {
      const tag = entityTag(__typename, id);
      this.invalidatedAt.set(tag, sequence);
      const keys = this.byTag.get(tag);
      if (!keys) continue;
      for (const key of [...keys]) {
        this.entries.delete(key);
        this.options.invalidations.inc();
      }
    }
  }

  get size(): number {
    return this.entries.size;
  }

  /** Forgets everything kept (changes may have been missed), and refuses answers begun before now. */
  clear(): void {
    this.sequence++;
    this.everythingBefore = this.sequence;
    this.entries.clear();
  }

  private unindex(key: string, entry: CachedResponse) {
    for (const tag of entry.tags) {
      const keys = this.byTag.get(tag);
      if (!keys) continue;
      keys.delete(key);
      if (keys.size === 0) this.byTag.delete(tag);
    }
  }
}
