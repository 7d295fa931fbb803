import { operationFromDocument, type Schema, type Supergraph } from '@apollo/federation-internals';
import { QueryPlanner, type QueryPlan, type QueryPlannerConfig } from '@apollo/query-planner';
import type { DocumentNode, GraphQLSchema, OperationDefinitionNode } from 'graphql';
import { LRUCache } from 'lru-cache';
import { typeFromAST, valueFromAST } from '../graphql-js.js';
import { ResponseShape } from './response-shape.js';

/** An operation made ready to run any number of times: its query plan and its response shape. */
export interface PreparedOperation {
  readonly plan: QueryPlan;
  readonly shape: ResponseShape;
  /** Its variables' default values. */
  readonly defaults: Record<string, unknown>;
  /** Set when its responses may be kept (see `PlanAdvice`): for whom, and the types to tag them with. */
  readonly keep?: { scope: 'PUBLIC' | 'PRIVATE'; tagged: ReadonlySet<string> };
}

/**
 * What a caller of the planner (the response cache) says about an operation before it is planned:
 * that its responses may be kept, for whom, and the document to plan instead (the client's, with
 * fields the cache needs added; the response keeps the client's shape).
 */
export type PlanAdvice = (
  document: DocumentNode,
  operation: OperationDefinitionNode,
) =>
  | {
      scope: 'PUBLIC' | 'PRIVATE';
      tagged: ReadonlySet<string>;
      document: DocumentNode;
      operation: OperationDefinitionNode;
    }
  | undefined;

/** About 32 MiB of plans, sized by their fetches' text (most of a plan's memory). */
const PLAN_CACHE_BYTES = 32 * 1024 * 1024;

/**
 * Plans operations with @apollo/query-planner, once per document and operation name (the plan of a
 * document is the same for every request; @apollo/gateway keys its cache the same way), and keeps
 * what each later request of it needs: the plan, the compiled response shape, the defaults.
 */
export class OperationPlans {
  private readonly planner: QueryPlanner;
  private readonly cache = new LRUCache<string, PreparedOperation>({
    maxSize: PLAN_CACHE_BYTES,
    sizeCalculation: (prepared) => sizeOf(prepared.plan),
  });

  constructor(
    supergraph: Supergraph,
    private readonly apiSchema: Schema,
    private readonly apiGraphQLSchema: GraphQLSchema,
    private readonly advice?: PlanAdvice,
    config?: QueryPlannerConfig,
  ) {
    this.planner = new QueryPlanner(supergraph, config);
  }

  /**
   * The prepared operation `operation` of `document`, planned on first use. `key` identifies the
   * document's text (Apollo Server's query hash); operations of one document are told apart by name.
   */
  prepare(key: string, document: DocumentNode, operation: OperationDefinitionNode): PreparedOperation {
    const name = operation.name?.value;
    const cacheKey = name === undefined ? key : `${key}\u0000${name}`;
    let prepared = this.cache.get(cacheKey);
    if (!prepared) {
      prepared = this.build(document, operation);
      this.cache.set(cacheKey, prepared);
    }
    return prepared;
  }

  /** Plans `operation` without keeping it. */
  build(document: DocumentNode, operation: OperationDefinitionNode): PreparedOperation {
    const advised = this.advice?.(document, operation);
    if (!advised) return this.withPlan(this.plan(document, operation), document, operation);
    const prepared = this.withPlan(this.plan(advised.document, advised.operation), document, operation);
    return { ...prepared, keep: { scope: advised.scope, tagged: advised.tagged } };
  }

  /** The query planner's plan of `operation`, as it comes (a subscription's is rewritten by its executor). */
  plan(document: DocumentNode, operation: OperationDefinitionNode): QueryPlan {
    return this.planner.buildQueryPlan(
      operationFromDocument(this.apiSchema, document, { operationName: operation.name?.value }),
    );
  }

  /** `operation` prepared to run with `plan`. */
  withPlan(plan: QueryPlan, document: DocumentNode, operation: OperationDefinitionNode): PreparedOperation {
    const defaults = defaultsOf(this.apiGraphQLSchema, operation);
    return { plan, shape: new ResponseShape(this.apiGraphQLSchema, document, operation, defaults), defaults };
  }
}

function defaultsOf(schema: GraphQLSchema, operation: OperationDefinitionNode): Record<string, unknown> {
  const defaults: Record<string, unknown> = {};
  for (const definition of operation.variableDefinitions ?? []) {
    if (!definition.defaultValue) continue;
    const type = typeFromAST(schema, definition.type as never);
    if (type) defaults[definition.variable.name.value] = valueFromAST(definition.defaultValue, type as never);
  }
  return defaults;
}

function sizeOf(plan: QueryPlan): number {
  let size = 1_000;
  const walk = (node: unknown) => {
    if (!node || typeof node !== 'object') return;
    const value = node as { kind?: string; operation?: string; nodes?: unknown[]; node?: unknown };
    if (value.kind === 'Fetch' && typeof value.operation === 'string') size += value.operation.length * 4;
    for (const child of value.nodes ?? []) walk(child);
    walk(value.node);
    for (const key of ['ifClause', 'elseClause', 'primary', 'rest'] as const)
      walk((node as Record<string, unknown>)[key]);
  };
  walk(plan.node);
  return size;
}
