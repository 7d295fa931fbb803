import type { Supergraph } from '@apollo/federation-internals';
import type { GraphQLDataSource } from '@apollo/gateway';
import type {
  GatewayExecutionResult,
  GatewayGraphQLRequestContext,
  GatewayInterface,
  GatewayLoadResult,
  GatewaySchemaLoadOrUpdateCallback,
} from '@apollo/server-gateway-interface';
import type { GraphQLSchema, OperationDefinitionNode } from 'graphql';
import { getVariableValues, GraphQLError } from '../graphql-js.js';
import { OperationPlans, type PlanAdvice, type PreparedOperation } from './operation-plans.js';
import { executePlan, type ContextValue } from './plan-execution.js';

export interface SupergraphGatewayOptions<Context extends ContextValue> {
  supergraph: Supergraph;
  supergraphSdl: string;
  /** One data source per subgraph of the supergraph, by its name there. */
  services: ReadonlyMap<string, GraphQLDataSource<Context>>;
  /** Which operations' responses may be kept, and what to plan for them (the response cache). */
  advice?: PlanAdvice;
  /** Told of each response that may be kept (an advised operation's, answered without errors). */
  keepable?: KeepableResponses<Context>;
}

/** Where the gateway reports responses that may be kept: with the entities in them, and when the request began. */
export interface KeepableResponses<Context> {
  /** Called as a request's execution starts; its value comes back with the response. */
  mark(): number;
  keep(context: Context, answer: { scope: 'PUBLIC' | 'PRIVATE'; tags: string[]; mark: number }): void;
}

/**
 * The supergraph's executor as Apollo Server's `gateway`: it plans each operation with
 * @apollo/query-planner (cached per document), runs the plan over the subgraphs' data sources and
 * shapes the result (execution/plan-execution.ts, execution/response-shape.ts). It replaces
 * `ApolloGateway`, whose executor rebuilt a federation-internals operation and walked it on every
 * request; the supergraph is static (a file), so there is nothing to poll or reload.
 */
export class SupergraphGateway<Context extends ContextValue> implements GatewayInterface {
  /** The API schema: what clients see and Apollo Server validates against. */
  readonly apiSchema: GraphQLSchema;
  readonly plans: OperationPlans;
  private readonly supergraphSchema: GraphQLSchema;
  private readonly listeners = new Set<GatewaySchemaLoadOrUpdateCallback>();
  private loaded = false;

  constructor(private readonly options: SupergraphGatewayOptions<Context>) {
    const api = options.supergraph.apiSchema();
    this.apiSchema = api.toGraphQLJSSchema();
    this.supergraphSchema = options.supergraph.schema.toGraphQLJSSchema();
    this.plans = new OperationPlans(options.supergraph, api, this.apiSchema, options.advice);
  }

  onSchemaLoadOrUpdate(callback: GatewaySchemaLoadOrUpdateCallback): () => void {
    this.listeners.add(callback);
    if (this.loaded) callback({ apiSchema: this.apiSchema, coreSupergraphSdl: this.options.supergraphSdl });
    return () => this.listeners.delete(callback);
  }

  async load(): Promise<GatewayLoadResult> {
    this.loaded = true;
    for (const listener of this.listeners) {
      listener({ apiSchema: this.apiSchema, coreSupergraphSdl: this.options.supergraphSdl });
    }
    return { executor: (requestContext) => this.execute(requestContext as GatewayGraphQLRequestContext<Context>) };
  }

  async stop(): Promise<void> {
    this.listeners.clear();
  }

  /** Runs one validated operation of a client's request. */
  async execute(requestContext: GatewayGraphQLRequestContext<Context>): Promise<GatewayExecutionResult> {
    const { request, document, queryHash } = requestContext;
    const operation = requestContext.operation as OperationDefinitionNode | undefined;
    if (!operation) {
      throw new GraphQLError(
        request.operationName ? `Unknown operation named "${request.operationName}".` : 'Must provide an operation.',
        { extensions: { code: 'INVALID_GRAPHQL' } },
      );
    }
    // As @apollo/gateway: variables that do not fit their definitions are refused before planning.
    if (operation.variableDefinitions?.length) {
      const { errors } = getVariableValues(this.apiSchema, operation.variableDefinitions, request.variables ?? {});
      if (errors) return { errors };
    }
    const prepared = this.plans.prepare(queryHash, document, operation);
    return this.run(prepared, requestContext, request.variables ?? {});
  }

  /** The subgraphs' data sources, by name. */
  get services(): ReadonlyMap<string, GraphQLDataSource<Context>> {
    return this.options.services;
  }

  /**
   * Runs a prepared operation with `variables` (over `services`, by default the gateway's own); the
   * response as @apollo/gateway's executor returns it.
   */
  async run(
    prepared: PreparedOperation,
    requestContext: GatewayGraphQLRequestContext<Context>,
    variables: Record<string, unknown>,
    services: ReadonlyMap<string, GraphQLDataSource<Context>> = this.options.services,
  ): Promise<GatewayExecutionResult> {
    const { keepable } = this.options;
    const keep = prepared.keep && keepable ? { ...prepared.keep, mark: keepable.mark() } : undefined;
    const { data, errors } = await executePlan(
      {
        services,
        request: requestContext,
        variables,
        defaults: prepared.defaults,
        supergraphSchema: this.supergraphSchema,
      },
      prepared.plan.node,
    );
    try {
      const tags = keep && new Set<string>();
      const shaped = prepared.shape.shape(data, variables, tags ? { types: keep.tagged, into: tags } : undefined);
      // Kept only whole: no error, every entity tagged, and no root answered null (an absence no
      // entity's change would name).
      const whole =
        errors.length === 0 &&
        shaped.errors.length === 0 &&
        !shaped.untagged &&
        shaped.data !== null &&
        Object.values(shaped.data).every((value) => value !== null);
      if (keep && tags && whole) {
        keepable!.keep(requestContext.context, { scope: keep.scope, tags: [...tags], mark: keep.mark });
      }
      // As @apollo/gateway (and Apollo Router): values that did not fit their types are reported
      // under `extensions.valueCompletion`, and only when the fetches themselves met no error (which
      // would have caused them).
      if (errors.length === 0 && shaped.errors.length > 0) {
        return { extensions: { valueCompletion: shaped.errors }, data: shaped.data };
      }
      return errors.length === 0 ? { data: shaped.data } : { errors, data: shaped.data };
    } catch (error) {
      if (error instanceof GraphQLError) return { errors: [error] };
      return { errors: [new GraphQLError((error as Error).message, { originalError: error as Error })] };
    }
  }
}
