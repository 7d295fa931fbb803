import type {
  DocumentNode,
  FieldNode,
  FormattedExecutionResult,
  FragmentDefinitionNode,
  OperationDefinitionNode,
  GraphQLFormattedError,
  GraphQLSchema,
  SelectionNode,
  SelectionSetNode,
  ValueNode,
  VariableDefinitionNode,
} from 'graphql';
import {
  GraphQLError,
  Kind,
  OperationTypeNode,
  getArgumentValues,
  getOperationAST,
  getVariableValues,
  parse,
  print,
  validate,
  visit,
} from '../graphql-js.js';
import { LRUCache } from 'lru-cache';
import { subscriptionError, SubscriptionErrorCode, withCode } from './errors.js';

/** The subscription fields of the supergraph (the orders subgraph's `Subscription` type). */
export type SubscriptionFieldName = 'orderStatusChanged' | 'orderUpdates';
const subscriptionFields: readonly string[] = ['orderStatusChanged', 'orderUpdates'] satisfies SubscriptionFieldName[];

/** A graphql-ws `subscribe` payload. */
export interface SubscribeRequest {
  query: string;
  operationName?: string | null;
  variables?: Record<string, unknown> | null;
}

/**
 * How one subscription is served: its single root field, and the query that resolves its `Order`
 * through the supergraph's query plan, exactly as a client's query would be.
 */
export interface SubscriptionPlan {
  /** The client's document, parsed and validated. */
  document: DocumentNode;
  field: SubscriptionFieldName;
  /** Where the order sits in every result: the root field's alias, else its name. */
  responseKey: string;
  /** `orderStatusChanged`: the order followed (the coerced `orderId` argument). */
  orderId?: string;
  /**
   * `query <name>(<the operation's variables>[, $<generated>: ID!]) { <responseKey>: order(id: ...) {
   * <the field's selection set> <hidden status and version> } }` with the fragments it uses.
   */
  query: string;
  /** Response keys of the Order where `status` / `version` are selected directly (aliases, fragments). */
  statusKeys: readonly string[];
  versionKeys: readonly string[];
  /** Keys the gateway adds to learn the order's own status and version; removed before delivery. */
  hiddenStatusKey: string;
  hiddenVersionKey: string;
  /** The variables for the query that resolves `orderId`. */
  variables(orderId: string): Record<string, unknown>;
}

/** Valid documents by query text, per API schema: the last 500 texts clients subscribed with. */
const validatedDocuments = new WeakMap<GraphQLSchema, LRUCache<string, DocumentNode>>();

/**
 * The client's document, parsed and validated once per distinct text and then shared: thousands of
 * subscribers of one app send the same text, and each used to hold its own AST (with every token of
 * its source, for error locations) for as long as it stayed subscribed. Documents are never mutated.
 */
function validatedDocument(schema: GraphQLSchema, query: string): DocumentNode | GraphQLError[] {
  let cache = validatedDocuments.get(schema);
  if (!cache) validatedDocuments.set(schema, (cache = new LRUCache<string, DocumentNode>({ max: 500 })));
  const cached = cache.get(query);
  if (cached) return cached;
  let document: DocumentNode;
  try {
    document = parse(query, { maxTokens: 5_000 });
  } catch (error) {
    if (error instanceof GraphQLError) return [withCode(error, SubscriptionErrorCode.GRAPHQL_PARSE_FAILED)];
    throw error;
  }
  const validationErrors = validate(schema, document);
  if (validationErrors.length > 0) {
    return validationErrors.map((error) => withCode(error, SubscriptionErrorCode.GRAPHQL_VALIDATION_FAILED));
  }
  // Valid, so no error will point into it: the shared copy needs no source locations.
  const shared = parse(query, { maxTokens: 5_000, noLocation: true });
  cache.set(query, shared);
  return shared;
}

/**
 * Parses and validates a subscription against the API schema (graphql-js's standard rules), checks it
 * is a subscription with exactly one root field, coerces its variables, and rewrites it into the
 * query that resolves its `Order`. Returns the errors a client should get otherwise.
 */
export function planSubscription(schema: GraphQLSchema, request: SubscribeRequest): SubscriptionPlan | GraphQLError[] {
  if (typeof request.query !== 'string' || request.query.trim() === '') {
    return [subscriptionError(SubscriptionErrorCode.BAD_REQUEST, 'a subscription needs a non-empty `query`')];
  }
  const validated = validatedDocument(schema, request.query);
  if (Array.isArray(validated)) return validated;
  const document = validated;
  const operation = getOperationAST(document, request.operationName ?? undefined);
  if (!operation) {
    const message = request.operationName
      ? `Unknown operation named "${request.operationName}"`
      : 'Must provide operation name if query contains multiple operations';
    return [subscriptionError(SubscriptionErrorCode.BAD_REQUEST, message)];
  }
  if (operation.operation !== OperationTypeNode.SUBSCRIPTION) {
    return [
      subscriptionError(
        SubscriptionErrorCode.BAD_REQUEST,
        `only subscriptions are served over WebSockets; send a ${operation.operation} over HTTP POST to /graphql`,
      ),
    ];
  }
  const [root, ...more] = operation.selectionSet.selections;
  if (!root || more.length > 0 || root.kind !== Kind.FIELD) {
    return [
      subscriptionError(
        SubscriptionErrorCode.BAD_REQUEST,
        'a subscription must select exactly one root field, without fragments',
      ),
    ];
  }
  if (root.directives?.length) {
    return [
      subscriptionError(
        SubscriptionErrorCode.BAD_REQUEST,
        'directives on the subscription root field are not supported',
      ),
    ];
  }
  const fieldName = root.name.value;
  const fieldDef = schema.getSubscriptionType()?.getFields()[fieldName];
  if (!fieldDef || !subscriptionFields.includes(fieldName) || !root.selectionSet) {
    return [subscriptionError(SubscriptionErrorCode.BAD_REQUEST, `the gateway cannot serve subscription ${fieldName}`)];
  }

  const variableDefinitions = operation.variableDefinitions ?? [];
  const coerced = getVariableValues(schema, variableDefinitions, request.variables ?? {});
  if (coerced.errors) return coerced.errors.map((error) => withCode(error, SubscriptionErrorCode.BAD_USER_INPUT));
  // The client's own values (not the coerced ones), for exactly the variables the operation defines.
  const clientVariables: Record<string, unknown> = {};
  for (const definition of variableDefinitions) {
    const name = definition.variable.name.value;
    if (request.variables && Object.hasOwn(request.variables, name)) clientVariables[name] = request.variables[name];
  }

  let idValue: ValueNode | undefined;
  let orderId: string | undefined;
  if (fieldName === 'orderStatusChanged') {
    const argument = root.arguments?.find((candidate) => candidate.name.value === 'orderId');
    if (!argument) return [subscriptionError(SubscriptionErrorCode.BAD_USER_INPUT, 'orderId is required')];
    let args: Record<string, unknown>;
    try {
      args = getArgumentValues(fieldDef, root, coerced.coerced);
    } catch (error) {
      if (error instanceof GraphQLError) return [withCode(error, SubscriptionErrorCode.BAD_USER_INPUT)];
      throw error;
    }
    orderId = String(args.orderId);
    // The client's own argument (a variable or a literal), so its variables stay used.
    idValue = argument.value;
  }

  let rewritten = rewrittenQueries.get(operation);
  if (!rewritten) {
    rewritten = rewrite(document, operation, root, root.selectionSet, idValue);
    rewrittenQueries.set(operation, rewritten);
  }
  const { orderIdVariable } = rewritten;
  return {
    document,
    field: fieldName as SubscriptionFieldName,
    responseKey: rewritten.responseKey,
    orderId,
    query: rewritten.query,
    statusKeys: rewritten.statusKeys,
    versionKeys: rewritten.versionKeys,
    hiddenStatusKey: rewritten.hiddenStatusKey,
    hiddenVersionKey: rewritten.hiddenVersionKey,
    variables: (id) => (orderIdVariable ? { ...clientVariables, [orderIdVariable]: id } : { ...clientVariables }),
  };
}

/** What a plan takes from its operation alone: the same for every subscriber of one shared document. */
interface RewrittenQuery {
  query: string;
  responseKey: string;
  statusKeys: readonly string[];
  versionKeys: readonly string[];
  hiddenStatusKey: string;
  hiddenVersionKey: string;
  /** orderUpdates: the generated variable that carries the order's id. */
  orderIdVariable?: string;
}

/**
 * By operation of a shared (cached) document: every subscriber with the same query text shares one
 * rewritten query, instead of each keeping its own printed copy.
 */
const rewrittenQueries = new WeakMap<OperationDefinitionNode, RewrittenQuery>();

/**
 * The query that resolves the root field's `Order`: `idValue` is the client's `orderId` argument
 * (orderStatusChanged); without it (orderUpdates), a generated variable.
 */
function rewrite(
  document: DocumentNode,
  operation: OperationDefinitionNode,
  root: FieldNode,
  selectionSet: SelectionSetNode,
  idValue: ValueNode | undefined,
): RewrittenQuery {
  const variableDefinitions = operation.variableDefinitions ?? [];
  const fragments = reachableFragments(document, operation.selectionSet);
  const usedNames = responseNames(document);
  const hiddenStatusKey = unusedName('subscriptionStatus', usedNames);
  const hiddenVersionKey = unusedName('subscriptionVersion', usedNames);

  const extraVariables: VariableDefinitionNode[] = [];
  let orderIdVariable: string | undefined;
  if (!idValue) {
    orderIdVariable = unusedName(
      'subscriptionOrderId',
      new Set(variableDefinitions.map((definition) => definition.variable.name.value)),
    );
    const variable = { kind: Kind.VARIABLE, name: { kind: Kind.NAME, value: orderIdVariable } } as const;
    idValue = variable;
    extraVariables.push({
      kind: Kind.VARIABLE_DEFINITION,
      variable,
      type: { kind: Kind.NON_NULL_TYPE, type: { kind: Kind.NAMED_TYPE, name: { kind: Kind.NAME, value: 'ID' } } },
    });
  }

  const responseKey = root.alias?.value ?? root.name.value;
  const query: DocumentNode = {
    kind: Kind.DOCUMENT,
    definitions: [
      {
        kind: Kind.OPERATION_DEFINITION,
        operation: OperationTypeNode.QUERY,
        name: operation.name,
        variableDefinitions: [...variableDefinitions, ...extraVariables],
        selectionSet: {
          kind: Kind.SELECTION_SET,
          selections: [
            {
              kind: Kind.FIELD,
              alias: { kind: Kind.NAME, value: responseKey },
              name: { kind: Kind.NAME, value: 'order' },
              arguments: [{ kind: Kind.ARGUMENT, name: { kind: Kind.NAME, value: 'id' }, value: idValue }],
              selectionSet: {
                kind: Kind.SELECTION_SET,
                selections: [
                  ...selectionSet.selections,
                  hiddenField(hiddenStatusKey, 'status'),
                  hiddenField(hiddenVersionKey, 'version'),
                ],
              },
            },
          ],
        },
      },
      ...fragments,
    ],
  };
  const fragmentMap = new Map(fragments.map((fragment) => [fragment.name.value, fragment]));
  return {
    query: print(query),
    responseKey,
    statusKeys: directKeys(selectionSet, fragmentMap, 'status'),
    versionKeys: directKeys(selectionSet, fragmentMap, 'version'),
    hiddenStatusKey,
    hiddenVersionKey,
    orderIdVariable,
  };
}

/** What one resolution of the plan's query gave, shaped as the subscription's result. */
export interface ShapedResult {
  /** What the client gets: `{ [responseKey]: order }`, or `data: null` with the errors. */
  result: FormattedExecutionResult;
  /** The order's status and version as resolved (before any override); null when it did not resolve. */
  status: string | null;
  version: number | null;
}

/**
 * Turns the query's result into the subscription's: removes the hidden keys and, for an event, puts
 * the event's status and version at every response key where the client selected them directly.
 */
export function shapeResult(
  plan: SubscriptionPlan,
  raw: { data?: Record<string, unknown> | null; errors?: readonly GraphQLFormattedError[] },
  change?: { status: string; version: number },
): ShapedResult {
  const errors = raw.errors?.length ? { errors: raw.errors } : {};
  const order = raw.data?.[plan.responseKey];
  if (!order || typeof order !== 'object') return { result: { data: null, ...errors }, status: null, version: null };
  const shaped: Record<string, unknown> = { ...(order as Record<string, unknown>) };
  const status = shaped[plan.hiddenStatusKey];
  const version = shaped[plan.hiddenVersionKey];
  delete shaped[plan.hiddenStatusKey];
  delete shaped[plan.hiddenVersionKey];
  if (change) {
    for (const key of plan.statusKeys) if (key in shaped) shaped[key] = change.status;
    for (const key of plan.versionKeys) if (key in shaped) shaped[key] = change.version;
  }
  return {
    result: { data: { [plan.responseKey]: shaped }, ...errors },
    status: typeof status === 'string' ? status : null,
    version: typeof version === 'number' ? version : null,
  };
}

/** Statuses after which nothing follows (the event's `final` says the same for a change). */
export const finalStatuses: ReadonlySet<string> = new Set(['DELIVERED', 'CANCELLED', 'REFUNDED']);

function hiddenField(alias: string, name: string): FieldNode {
  return { kind: Kind.FIELD, alias: { kind: Kind.NAME, value: alias }, name: { kind: Kind.NAME, value: name } };
}

/** The fragments an operation uses, directly or through other fragments. */
function reachableFragments(document: DocumentNode, selectionSet: SelectionSetNode): FragmentDefinitionNode[] {
  const all = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) all.set(definition.name.value, definition);
  }
  const used = new Set<string>();
  const walk = (node: SelectionSetNode) =>
    visit(node, {
      FragmentSpread(spread) {
        const name = spread.name.value;
        const fragment = all.get(name);
        if (used.has(name) || !fragment) return;
        used.add(name);
        walk(fragment.selectionSet);
      },
    });
  walk(selectionSet);
  return [...all.values()].filter((fragment) => used.has(fragment.name.value));
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
 * The response keys at which `fieldName` is selected directly on the Order: plain, aliased, or inside
 * inline fragments and fragment spreads at the Order's own level (not in nested objects).
 */
function directKeys(
  selectionSet: SelectionSetNode,
  fragments: ReadonlyMap<string, FragmentDefinitionNode>,
  fieldName: string,
): string[] {
  const keys = new Set<string>();
  const seen = new Set<string>();
  const walk = (selections: readonly SelectionNode[]) => {
    for (const selection of selections) {
      if (selection.kind === Kind.FIELD) {
        if (selection.name.value === fieldName) keys.add(selection.alias?.value ?? fieldName);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        walk(selection.selectionSet.selections);
      } else {
        const fragment = fragments.get(selection.name.value);
        if (!fragment || seen.has(fragment.name.value)) continue;
        seen.add(fragment.name.value);
        walk(fragment.selectionSet.selections);
      }
    }
  };
  walk(selectionSet.selections);
  return [...keys];
}
