import type { GraphQLDataSource } from '@apollo/gateway';
import type { FetchNode, PlanNode, QueryPlan } from '@apollo/query-planner';
import type { GatewayGraphQLRequestContext } from '@apollo/server-gateway-interface';
import type {
  DocumentNode,
  FieldNode,
  FragmentDefinitionNode,
  FormattedExecutionResult,
  GraphQLFormattedError,
  OperationDefinitionNode,
  SelectionSetNode,
} from 'graphql';
import { formatError, type Logger } from '@food/platform';
import type { GatewayContext } from '../context.js';
import type { PreparedOperation } from '../execution/operation-plans.js';
import type { SupergraphGateway } from '../execution/supergraph-gateway.js';
import { getOperationAST, GraphQLError, Kind, parse, print, visit } from '../graphql-js.js';
import type { LiveField } from './declarations.js';

/** The entity an event is about, as federation references it: its type and key fields. */
export type EntityRepresentation = { __typename: string } & Record<string, unknown>;

/** A subscription operation made ready to be resolved for any entity of its field, many times. */
export interface PreparedSubscription {
  readonly live: LiveField;
  /** The root field's alias, else its name: where the entity sits in every result. */
  readonly responseKey: string;
  /** Entity fields the gateway selects for itself (version, `until`), by field, at their hidden alias. */
  readonly hidden: ReadonlyMap<string, string>;
  /**
   * For each field of the declaration's `fields`: where the client selected it (its response keys,
   * with the sub-selection of an object field), so an event's value can be put there in its shape.
   */
  readonly projected: ReadonlyMap<string, readonly ProjectedKey[]>;
  /**
   * The variables a resolution reads: those of the selection, not of the root field's arguments (the
   * event names the entity instead). Topics whose values of these are equal get equal results.
   */
  readonly resolutionVariables: readonly string[];
  /** The operation with its hidden fields, planned from the event's entity rather than the root field. */
  readonly prepared: PreparedOperation;
  readonly operation: OperationDefinitionNode;
  readonly document: DocumentNode;
}

/** A response key of a projected field, and for an object field the client's selection of it. */
export interface ProjectedKey {
  key: string;
  selection?: SelectionSetNode;
}

/** What one resolution gave: the client's result, and the hidden fields' values (null: did not resolve). */
export interface Resolution {
  result: FormattedExecutionResult;
  hidden: Record<string, unknown> | null;
}

const REPRESENTATIONS = '__liveRepresentations';

/**
 * Resolves subscription results through the supergraph's own query plan, as Cosmo's and Hive's
 * event-driven subscriptions do: the planner plans the client's subscription as it would for a
 * subgraph that served it, and the gateway replaces the plan's first fetch (the subscription root
 * field on its subgraph) by an `_entities` fetch of the entity the event names, on that subgraph.
 * Every other fetch, and the shaping of the result, is the gateway's ordinary executor's.
 */
export class LiveExecutor {
  /** Root `_entities` operations this executor made, by text: their one entity is moved to its key. */
  private readonly entityRoots = new Map<string, string>();
  private rooted: ReadonlyMap<string, GraphQLDataSource<GatewayContext>> | undefined;
  private readonly prepared = new WeakMap<OperationDefinitionNode, PreparedSubscription>();

  constructor(
    /** The gateway's executor, whose planner, data sources and plan execution this one shares. */
    private readonly gateway: SupergraphGateway<GatewayContext>,
    private readonly logger: Logger,
  ) {}

  /** The gateway's data sources, each wrapped once. */
  private services(): ReadonlyMap<string, GraphQLDataSource<GatewayContext>> {
    this.rooted ??= new Map([...this.gateway.services].map(([name, source]) => [name, this.rootedEntities(source)]));
    return this.rooted;
  }

  /**
   * Plans `operation` (a validated subscription with one root field, `live.field`) once per shared
   * document, with the fields the gateway needs to see added under hidden aliases.
   */
  prepare(document: DocumentNode, operation: OperationDefinitionNode, live: LiveField): PreparedSubscription {
    const cached = this.prepared.get(operation);
    if (cached) return cached;
    const root = operation.selectionSet.selections[0] as FieldNode;
    const responseKey = root.alias?.value ?? root.name.value;
    const taken = responseNames(document);
    const hidden = new Map<string, string>();
    for (const field of [live.version, ...(live.until?.keys() ?? [])]) {
      if (field !== undefined && !hidden.has(field)) hidden.set(field, unusedName(`__live_${field}`, taken));
    }
    const withHidden = withHiddenFields(document, operation, hidden);
    const hiddenOperation = getOperationAST(withHidden, operation.name?.value)!;
    const { plans } = this.gateway;
    const plan = this.fromEntity(plans.plan(withHidden, hiddenOperation), responseKey, live.entityType);
    const prepared: PreparedSubscription = {
      live,
      responseKey,
      hidden,
      projected: new Map([...live.fields.keys()].map((field) => [field, selectedAt(document, root, field)])),
      resolutionVariables: variablesBeyondRootArguments(document, root),
      prepared: plans.withPlan(plan, withHidden, hiddenOperation),
      operation: hiddenOperation,
      document: withHidden,
    };
    this.prepared.set(operation, prepared);
    return prepared;
  }

  /** Resolves the prepared subscription for one entity, as `context.caller`, with the client's variables. */
  async resolve(
    prepared: PreparedSubscription,
    entity: EntityRepresentation,
    variables: Record<string, unknown>,
    context: GatewayContext,
  ): Promise<Resolution> {
    const withEntity = { ...variables, [REPRESENTATIONS]: [entity] };
    const requestContext = {
      request: { variables: withEntity, operationName: prepared.operation.name?.value },
      context,
      logger: this.logger,
      metrics: {},
      operation: prepared.operation,
      operationName: prepared.operation.name?.value ?? null,
      document: prepared.document,
      cache: undefined,
      overallCachePolicy: undefined,
    } as unknown as GatewayGraphQLRequestContext<GatewayContext>;
    const raw = await this.gateway.run(prepared.prepared, requestContext, withEntity, this.services());
    const errors: GraphQLFormattedError[] | undefined = raw.errors?.map((error) =>
      formatError(
        error instanceof GraphQLError ? error.toJSON() : { message: String((error as Error).message ?? error) },
        error,
        (unexpected) => this.logger.error({ err: unexpected }, 'unexpected error resolving a subscription'),
      ),
    );
    const object = raw.data?.[prepared.responseKey];
    if (!object || typeof object !== 'object') {
      return { result: { data: null, ...(errors?.length ? { errors } : {}) }, hidden: null };
    }
    const shaped = { ...(object as Record<string, unknown>) };
    const hidden: Record<string, unknown> = {};
    for (const [field, alias] of prepared.hidden) {
      hidden[field] = shaped[alias];
      delete shaped[alias];
    }
    return {
      result: { data: { [prepared.responseKey]: shaped }, ...(errors?.length ? { errors } : {}) },
      hidden,
    };
  }

  /**
   * The plan with its subscription root fetch replaced: the same selection, fetched as the entity the
   * event names (`_entities` on the same subgraph, aliased to the root field's response key).
   */
  private fromEntity(plan: QueryPlan, responseKey: string, entityType: string): QueryPlan {
    const node = plan.node;
    if (node?.kind !== 'Subscription') throw new Error('not a subscription plan');
    const primary = node.primary;
    const document = parse(primary.operation);
    const operation = getOperationAST(document)!;
    const root = operation.selectionSet.selections[0] as FieldNode;
    const selection = root.selectionSet!;
    const entities = entitiesOperation(operation, selection, responseKey, entityType);
    this.entityRoots.set(entities.text, responseKey);
    const fetch: FetchNode = {
      ...primary,
      operation: entities.text,
      operationKind: 'query' as FetchNode['operationKind'],
      variableUsages: [...entities.variables, REPRESENTATIONS],
      operationDocumentNode: undefined,
    };
    const rest: PlanNode[] = node.rest ? [node.rest] : [];
    return { ...plan, node: rest.length ? { kind: 'Sequence', nodes: [fetch, ...rest] } : fetch };
  }

  /** A data source that, for this executor's root `_entities` fetches, answers the entity at its key. */
  private rootedEntities(source: GraphQLDataSource<GatewayContext>): GraphQLDataSource<GatewayContext> {
    return {
      process: async (options) => {
        const key = this.entityRoots.get(options.request.query ?? '');
        const response = await source.process(options);
        if (key === undefined || !response.data) return response;
        const list = response.data[key];
        return {
          ...response,
          data: { ...response.data, [key]: Array.isArray(list) ? (list[0] ?? null) : list },
          ...(response.errors
            ? {
                errors: response.errors.map((error) =>
                  error.path?.[0] === key && typeof error.path[1] === 'number'
                    ? { ...error, path: [key, ...error.path.slice(2)] }
                    : error,
                ),
              }
            : {}),
        };
      },
    };
  }
}

/** `query($__liveRepresentations: [_Any!]!, <the variables the selection uses>) { key: _entities(...) { ...on T { selection } } }` */
function entitiesOperation(
  operation: OperationDefinitionNode,
  selection: SelectionSetNode,
  responseKey: string,
  typename: string,
): { text: string; variables: string[] } {
  const used = new Set<string>();
  visit(selection, { Variable: (variable) => void used.add(variable.name.value) });
  const definitions = (operation.variableDefinitions ?? []).filter((d) => used.has(d.variable.name.value));
  const text = print({
    kind: Kind.DOCUMENT,
    definitions: [
      {
        kind: Kind.OPERATION_DEFINITION,
        operation: 'query' as OperationDefinitionNode['operation'],
        name: operation.name,
        variableDefinitions: [
          ...definitions,
          {
            kind: Kind.VARIABLE_DEFINITION,
            variable: { kind: Kind.VARIABLE, name: { kind: Kind.NAME, value: REPRESENTATIONS } },
            type: {
              kind: Kind.NON_NULL_TYPE,
              type: {
                kind: Kind.LIST_TYPE,
                type: {
                  kind: Kind.NON_NULL_TYPE,
                  type: { kind: Kind.NAMED_TYPE, name: { kind: Kind.NAME, value: '_Any' } },
                },
              },
            },
          },
        ],
        selectionSet: {
          kind: Kind.SELECTION_SET,
          selections: [
            {
              kind: Kind.FIELD,
              alias: { kind: Kind.NAME, value: responseKey },
              name: { kind: Kind.NAME, value: '_entities' },
              arguments: [
                {
                  kind: Kind.ARGUMENT,
                  name: { kind: Kind.NAME, value: 'representations' },
                  value: { kind: Kind.VARIABLE, name: { kind: Kind.NAME, value: REPRESENTATIONS } },
                },
              ],
              selectionSet: {
                kind: Kind.SELECTION_SET,
                selections: [
                  {
                    kind: Kind.INLINE_FRAGMENT,
                    typeCondition: { kind: Kind.NAMED_TYPE, name: { kind: Kind.NAME, value: typename } },
                    selectionSet: selection,
                  },
                ],
              },
            },
          ],
        },
      },
    ],
  } as DocumentNode);
  return { text, variables: [...used] };
}

/** The variables `document` uses anywhere but in the arguments of `root`. */
function variablesBeyondRootArguments(document: DocumentNode, root: FieldNode): string[] {
  const used = new Set<string>();
  const collect = { Variable: (variable: { name: { value: string } }) => void used.add(variable.name.value) };
  if (root.selectionSet) visit(root.selectionSet, collect);
  for (const directive of root.directives ?? []) visit(directive, collect);
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) visit(definition, collect);
    if (definition.kind === Kind.OPERATION_DEFINITION)
      for (const directive of definition.directives ?? []) visit(directive, collect);
  }
  return [...used].sort();
}

/** The client's document with `hidden` fields (field -> alias) added under its root field. */
function withHiddenFields(
  document: DocumentNode,
  operation: OperationDefinitionNode,
  hidden: ReadonlyMap<string, string>,
): DocumentNode {
  if (hidden.size === 0) return document;
  const root = operation.selectionSet.selections[0] as FieldNode;
  const extra: FieldNode[] = [...hidden].map(([name, alias]) => ({
    kind: Kind.FIELD,
    alias: { kind: Kind.NAME, value: alias },
    name: { kind: Kind.NAME, value: name },
  }));
  const newRoot: FieldNode = {
    ...root,
    selectionSet: { kind: Kind.SELECTION_SET, selections: [...root.selectionSet!.selections, ...extra] },
  };
  return {
    ...document,
    definitions: document.definitions.map((definition) =>
      definition === operation
        ? { ...operation, selectionSet: { kind: Kind.SELECTION_SET, selections: [newRoot] } }
        : definition,
    ),
  };
}

/** Every field name and alias in the document, so generated aliases cannot collide with them. */
function responseNames(document: DocumentNode): Set<string> {
  const names = new Set<string>();
  visit(document, {
    Field(field) {
      names.add(field.name.value);
      if (field.alias) names.add(field.alias.value);
    },
  });
  return names;
}

function unusedName(base: string, taken: ReadonlySet<string>): string {
  let name = base;
  for (let n = 2; taken.has(name); n++) name = `${base}${n}`;
  return name;
}

/**
 * Where `fieldName` is selected directly on the root field's object: plain, aliased, or inside inline
 * fragments and fragment spreads at its own level (not in nested objects); for an object field, with
 * its sub-selection (fragments inlined), so a value can be shaped as the client asked.
 */
function selectedAt(document: DocumentNode, root: FieldNode, fieldName: string): ProjectedKey[] {
  const fragments = fragmentsOf(document);
  const found = new Map<string, ProjectedKey>();
  const seen = new Set<string>();
  const walk = (selectionSet: SelectionSetNode) => {
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FIELD) {
        if (selection.name.value !== fieldName) continue;
        const key = selection.alias?.value ?? fieldName;
        const previous = found.get(key)?.selection;
        const selections = [...(previous?.selections ?? []), ...(selection.selectionSet?.selections ?? [])];
        found.set(key, {
          key,
          ...(selections.length ? { selection: inlined({ kind: Kind.SELECTION_SET, selections }, fragments) } : {}),
        });
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        walk(selection.selectionSet);
      } else {
        const fragment = fragments.get(selection.name.value);
        if (!fragment || seen.has(fragment.name.value)) continue;
        seen.add(fragment.name.value);
        walk(fragment.selectionSet);
      }
    }
  };
  if (root.selectionSet) walk(root.selectionSet);
  return [...found.values()];
}

function fragmentsOf(document: DocumentNode): Map<string, FragmentDefinitionNode> {
  return new Map(
    document.definitions.flatMap((d) => (d.kind === Kind.FRAGMENT_DEFINITION ? [[d.name.value, d] as const] : [])),
  );
}

/** The selection with its fragment spreads and inline fragments replaced by their fields. */
function inlined(
  selectionSet: SelectionSetNode,
  fragments: ReadonlyMap<string, FragmentDefinitionNode>,
): SelectionSetNode {
  const fields: FieldNode[] = [];
  const visit = (set: SelectionSetNode, seen: Set<string>) => {
    for (const selection of set.selections) {
      if (selection.kind === Kind.FIELD) {
        fields.push(
          selection.selectionSet
            ? { ...selection, selectionSet: inlined(selection.selectionSet, fragments) }
            : selection,
        );
      } else if (selection.kind === Kind.INLINE_FRAGMENT) visit(selection.selectionSet, seen);
      else {
        const fragment = fragments.get(selection.name.value);
        if (!fragment || seen.has(fragment.name.value)) continue;
        visit(fragment.selectionSet, new Set([...seen, fragment.name.value]));
      }
    }
  };
  visit(selectionSet, new Set());
  return { kind: Kind.SELECTION_SET, selections: fields };
}
