import { type GraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import type {
  ConditionNode,
  FetchDataRewrite,
  FetchNode,
  PlanNode,
  QueryPlan,
  QueryPlanSelectionNode,
  ResponsePath,
} from '@apollo/query-planner';
import type { GatewayGraphQLRequestContext } from '@apollo/server-gateway-interface';
import type { GraphQLFormattedError, GraphQLSchema } from 'graphql';
import { inSpan } from '@food/platform';
import { GraphQLError, isAbstractType, isInterfaceType, isObjectType } from '../graphql-js.js';

/**
 * Runs a query plan's fetches and gathers their answers into one tree, which response-shape.ts then
 * turns into the client's response. The rules are @apollo/gateway's `executeQueryPlan` (fetch
 * inputs, rewrites, merging, how subgraph errors are re-pathed and coded), so answers and errors stay
 * what they were; the cost per request is lower: no tracing spans or usage-report traces per node,
 * no federation-internals operation rebuilt per request, and each fetch's representations built by
 * one pass over its entities.
 */

type Data = Record<string, unknown>;

/** What @apollo/gateway's data sources accept as a request's context (the bound of their type parameter). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the bound is @apollo/gateway's own
export type ContextValue = Record<string, any>;

/** What `@apollo/gateway`'s data sources are called with (the incoming request and its context). */
export type IncomingRequest<Context extends ContextValue> = GatewayGraphQLRequestContext<Context>;

export interface PlanRun<Context extends ContextValue> {
  /** The subgraphs' data sources, by the supergraph's subgraph names. */
  services: ReadonlyMap<string, GraphQLDataSource<Context>>;
  request: IncomingRequest<Context>;
  /** The client's variables, as sent (fetches pass on those they use; subgraphs coerce them). */
  variables: Record<string, unknown>;
  /** The operation's variables' default values, for `Condition` nodes. */
  defaults: Record<string, unknown>;
  /** Fetch inputs (`requires`) may name @inaccessible elements, which only the supergraph schema has. */
  supergraphSchema: GraphQLSchema;
}

/** The tree the fetches gathered, and the errors met on the way (each placed at its response path). */
export interface Gathered {
  data: Data;
  errors: GraphQLError[];
}

interface Cursor {
  /** Where `data` is in the full result; `@` stands for every element of a list. */
  path: ResponsePath;
  data: Data | (Data | null | undefined)[];
  full: Data;
}

export async function executePlan<Context extends ContextValue>(
  run: PlanRun<Context>,
  node: QueryPlan['node'],
): Promise<Gathered> {
  const data = Object.create(null) as Data;
  const errors: GraphQLError[] = [];
  if (node?.kind === 'Subscription') throw new Error('Execution of subscriptions not supported by gateway');
  if (node) await executeNode(new Execution(run, errors), node, { path: [], data, full: data });
  return { data, errors };
}

class Execution<Context extends ContextValue> {
  private readonly typeChecks = new Map<string, boolean>();

  constructor(
    readonly run: PlanRun<Context>,
    readonly errors: GraphQLError[],
  ) {}

  /** federation's `isObjectOfType`, memoised per (typename, condition) pair for this request. */
  isObjectOfType(object: Data, condition: string, whenUnknown = false): boolean {
    const typename = object.__typename;
    if (typeof typename !== 'string' || !typename) return whenUnknown;
    if (typename === condition) return true;
    const key = `${typename}\u0000${condition}`;
    let applies = this.typeChecks.get(key);
    if (applies === undefined) {
      const schema = this.run.supergraphSchema;
      const type = schema.getType(typename);
      const conditional = schema.getType(condition);
      applies =
        !!type &&
        !!conditional &&
        isAbstractType(conditional) &&
        (isObjectType(type) || isInterfaceType(type)) &&
        schema.isSubType(conditional, type);
      this.typeChecks.set(key, applies);
    }
    return applies;
  }
}

async function executeNode<Context extends ContextValue>(
  execution: Execution<Context>,
  node: PlanNode,
  cursor: Cursor | undefined,
) {
  if (!cursor) return;
  switch (node.kind) {
    case 'Sequence':
      for (const child of node.nodes) await executeNode(execution, child, cursor);
      return;
    case 'Parallel':
      await Promise.all(node.nodes.map((child) => executeNode(execution, child, cursor)));
      return;
    case 'Flatten': {
      const data = flattenAt(cursor.data, node.path);
      await executeNode(
        execution,
        node.node,
        data ? { path: [...cursor.path, ...node.path], data, full: cursor.full } : undefined,
      );
      return;
    }
    case 'Fetch':
      try {
        // Its span is the parent of the subgraph's (the fetch carries its traceparent).
        await inSpan('gateway.fetch', { service: node.serviceName }, () => executeFetch(execution, node, cursor));
      } catch (error) {
        execution.errors.push(
          error instanceof GraphQLError
            ? error
            : new GraphQLError(String((error as Error)?.message ?? error), { originalError: error as Error }),
        );
      }
      return;
    case 'Condition': {
      const branch = evaluated(node, execution.run) ? node.ifClause : node.elseClause;
      if (branch) await executeNode(execution, branch, cursor);
      return;
    }
    case 'Defer':
      throw new Error('@defer support is not available in the gateway');
  }
}

function evaluated(node: ConditionNode, run: PlanRun<Record<string, unknown>>): boolean {
  const name = node.condition;
  let value = Object.prototype.hasOwnProperty.call(run.variables, name) ? run.variables[name] : undefined;
  if (value === undefined) value = run.defaults[name];
  if (typeof value !== 'boolean')
    throw new Error(`Invalid non-boolean value ${String(value)} for Boolean! variable $${name}`);
  return value;
}

async function executeFetch<Context extends ContextValue>(
  execution: Execution<Context>,
  fetch: FetchNode,
  cursor: Cursor,
): Promise<void> {
  const { run } = execution;
  const service = run.services.get(fetch.serviceName);
  if (!service) throw new Error(`Couldn't find service with name "${fetch.serviceName}"`);
  const entities: Data[] = [];
  if (Array.isArray(cursor.data)) {
    for (const entity of cursor.data) if (entity !== null && entity !== undefined) entities.push(entity);
  } else entities.push(cursor.data);
  if (entities.length === 0) return;

  const variables = Object.create(null) as Data;
  for (const name of fetch.variableUsages ?? []) {
    if (Object.prototype.hasOwnProperty.call(run.variables, name) && run.variables[name] !== undefined) {
      variables[name] = run.variables[name];
    }
  }

  if (!fetch.requires) {
    const received = await send(execution, service, fetch, cursor, variables, undefined);
    if (received) applyRewrites(execution, fetch.outputRewrites, received);
    for (const entity of entities) deepMerge(entity, received);
    return;
  }

  const representations: Data[] = [];
  const entityOf: number[] = [];
  for (let i = 0; i < entities.length; i++) {
    const representation = selectInputs(execution, entities[i]!, fetch.requires);
    if (representation && representation.__typename) {
      applyRewrites(execution, fetch.inputRewrites, representation);
      representations.push(representation);
      entityOf.push(i);
    }
  }
  // No entity meets the inputs' type conditions.
  if (representations.length === 0) return;
  if ('representations' in variables) throw new Error('Variables cannot contain key "representations"');
  variables.representations = representations;
  const received = await send(execution, service, fetch, cursor, variables, entityOf);
  if (!received) return;
  const list = received._entities;
  if (!Array.isArray(list)) throw new Error('Expected "data._entities" in response to be an array');
  if (list.length !== representations.length) {
    throw new Error(`Expected "data._entities" to contain ${representations.length} elements`);
  }
  for (let i = 0; i < list.length; i++) {
    const entity = list[i] as Data | null;
    const existing = entities[entityOf[i]!]!;
    if (entity && !entity.__typename) entity.__typename = existing.__typename;
    if (entity) applyRewrites(execution, fetch.outputRewrites, entity);
    deepMerge(existing, entity);
  }
}

/** Calls the subgraph; its errors join the response's, at the paths where their data would have gone. */
async function send<Context extends ContextValue>(
  execution: Execution<Context>,
  service: GraphQLDataSource<Context>,
  fetch: FetchNode,
  cursor: Cursor,
  variables: Data,
  /** For an `_entities` fetch: each representation's index among the cursor's (non-null) entities. */
  entityOf: number[] | undefined,
): Promise<Data | null | undefined> {
  const { request } = execution.run;
  const response = await service.process({
    // GraphQLDataSourceRequestKind.INCOMING_OPERATION (the package does not export the enum's value).
    kind: 'incoming operation',
    request: { query: fetch.operation, variables, operationName: fetch.operationName },
    incomingRequestContext: request,
    context: request.context,
    document: fetch.operationDocumentNode,
    pathInIncomingRequest: cursor.path,
  } as GraphQLDataSourceProcessOptions<Context>);
  if (response.errors) {
    let paths: ResponsePath[] | undefined;
    for (const error of response.errors) {
      let path: ResponsePath | undefined;
      const at = error.path;
      if (entityOf && typeof at?.[1] === 'number') {
        paths ??= hydratedPaths(cursor.path, cursor.full);
        path = [...(paths[entityOf[at[1]] ?? -1] ?? []), ...at.slice(2)];
      } else if (at) path = [...cursor.path, ...at];
      execution.errors.push(downstreamError(error, fetch.serviceName, path));
    }
  }
  return response.data as Data | null | undefined;
}

/** A subgraph's error as the client sees it: its message, code (else DOWNSTREAM_SERVICE_ERROR) and the service. */
function downstreamError(
  error: GraphQLFormattedError,
  serviceName: string,
  path: ResponsePath | undefined,
): GraphQLError {
  const message = error.message || `Error while fetching subquery from service "${serviceName}"`;
  const extensions: Record<string, unknown> = { ...error.extensions, serviceName };
  if (!error.extensions?.code) extensions.code = 'DOWNSTREAM_SERVICE_ERROR';
  return new GraphQLError(message, { originalError: error as Error, path, extensions });
}

/** The concrete paths of every non-null object at `path` (`@`: each element), in the order fetches list them. */
function hydratedPaths(path: ResponsePath, full: Data): ResponsePath[] {
  const out: ResponsePath[] = [];
  const walk = (prefix: ResponsePath, rest: ResponsePath, data: unknown) => {
    if (data === null || data === undefined) return;
    const head = rest[0];
    if (head === undefined) out.push(prefix);
    else if (head === '@') {
      if (Array.isArray(data)) data.forEach((value, i) => walk([...prefix, i], rest.slice(1), value));
    } else if (Array.isArray(data)) data.forEach((value, i) => walk([...prefix, i], rest, value));
    else if (Object.prototype.hasOwnProperty.call(data, head))
      walk([...prefix, head], rest.slice(1), (data as Data)[head]);
  };
  walk([], path, full);
  return out;
}

/** The objects at `path` below `value`: one object, or for `@` every element's, flattened. */
function flattenAt(value: Cursor['data'] | null | undefined, path: ResponsePath): Cursor['data'] | null | undefined {
  if (path.length === 0 || value === null || value === undefined) return value;
  if (!path.includes('@')) {
    let at: unknown = value;
    for (const key of path) {
      if (at === null || at === undefined) return at;
      if (Array.isArray(at)) throw new Error(`Unexpected array in result for path element ${String(key)}`);
      at = own(at as Data, key as string);
    }
    return at as Cursor['data'] | null | undefined;
  }
  const out: (Data | null | undefined)[] = [];
  collectAt(value, path, 0, out);
  return out;
}

/** Appends to `out` what `path` from index `i` reaches below `value` (a path with `@`: a list). */
function collectAt(value: unknown, path: ResponsePath, i: number, out: (Data | null | undefined)[]): void {
  for (; i < path.length; i++) {
    if (value === null || value === undefined) break;
    const key = path[i]!;
    if (key === '@') {
      if (!Array.isArray(value)) throw new Error('Expected a list at @');
      for (const element of value) collectAt(element, path, i + 1, out);
      return;
    }
    if (Array.isArray(value)) throw new Error(`Unexpected array in result for path element ${String(key)}`);
    value = own(value as Data, key as string);
  }
  if (Array.isArray(value)) out.push(...(value as (Data | null)[]));
  else out.push(value as Data | null | undefined);
}

/** A fetch's input for one entity: the `requires` selection of it, null when a field it needs is missing. */
function selectInputs<Context extends ContextValue>(
  execution: Execution<Context>,
  source: Data | null,
  selections: readonly QueryPlanSelectionNode[],
): Data | null {
  if (source === null) return null;
  const result = Object.create(null) as Data;
  for (const selection of selections) {
    if (selection.kind === 'Field') {
      const name = selection.alias ?? selection.name;
      const value = Object.prototype.hasOwnProperty.call(source, name) ? source[name] : undefined;
      // An input missing means fetching it failed and nulled its entity: this entity is left out.
      if (value === undefined) return null;
      const inner = selection.selections;
      if (Array.isArray(value)) {
        result[name] = inner ? value.map((item: Data | null) => selectInputs(execution, item, inner)) : value;
      } else result[name] = inner ? selectInputs(execution, value as Data | null, inner) : value;
    } else if (selection.typeCondition && execution.isObjectOfType(source, selection.typeCondition)) {
      deepMerge(result, selectInputs(execution, source, selection.selections));
    }
  }
  return result;
}

function applyRewrites<Context extends ContextValue>(
  execution: Execution<Context>,
  rewrites: FetchDataRewrite[] | undefined,
  value: Data,
) {
  if (!rewrites) return;
  for (const rewrite of rewrites) {
    if (rewrite.path.length === 0) continue;
    const parent = rewrite.path.slice(0, -1);
    const field = rewrite.path[rewrite.path.length - 1]!;
    if (field.startsWith(FRAGMENT_PREFIX))
      throw new Error(`Unexpected fragment as last element of ${rewrite.path.join(',')}`);
    applyAtPath(execution, parent, value, (object) => {
      if (rewrite.kind === 'ValueSetter') {
        setOwn(object, field, rewrite.setValueTo);
      } else {
        const renamed = own(object, field);
        if (renamed) {
          setOwn(object, rewrite.renameKeyTo, renamed);
          object[field] = undefined;
        }
      }
    });
  }
}

const FRAGMENT_PREFIX = '... on ';

function applyAtPath<Context extends ContextValue>(
  execution: Execution<Context>,
  path: string[],
  value: unknown,
  apply: (object: Data) => void,
) {
  if (Array.isArray(value)) {
    for (const item of value) applyAtPath(execution, path, item, apply);
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  if (path.length === 0) return apply(value as Data);
  const [first, ...rest] = path as [string, ...string[]];
  if (first.startsWith(FRAGMENT_PREFIX)) {
    if (execution.isObjectOfType(value as Data, first.slice(FRAGMENT_PREFIX.length), true)) {
      applyAtPath(execution, rest, value, apply);
    }
  } else applyAtPath(execution, rest, own(value as Data, first), apply);
}

const own = (object: Data, key: string): unknown =>
  Object.prototype.hasOwnProperty.call(object, key) ? object[key] : undefined;

/** Sets an own property, also for a key `Object.prototype` has (`__proto__` would otherwise set the prototype). */
function setOwn(object: Data, key: string, value: unknown) {
  if (key === '__proto__')
    Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true });
  else object[key] = value;
}

const isPlainObject = (value: unknown): value is Data =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

/** @apollo/gateway's `deepMerge`: `source`'s fields into `target`, objects and same-length lists merged. */
export function deepMerge(target: Data, source: Data | null | undefined): void {
  if (source === undefined || source === null) return;
  for (const key of Object.keys(source)) {
    const value = source[key];
    if (value === undefined) continue;
    const existing = own(target, key);
    if (existing && isPlainObject(value)) deepMerge(existing as Data, value);
    else if (Array.isArray(value) && Array.isArray(existing) && value.length === existing.length) {
      for (let i = 0; i < value.length; i++) {
        if (isPlainObject(existing[i]) && isPlainObject(value[i])) deepMerge(existing[i] as Data, value[i] as Data);
        else existing[i] = value[i];
      }
    } else setOwn(target, key, value);
  }
}
