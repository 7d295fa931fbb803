import type { DocumentNode, GraphQLSchema, OperationDefinitionNode } from 'graphql';
import {
  GraphQLError,
  Kind,
  OperationTypeNode,
  getArgumentValues,
  getOperationAST,
  getVariableValues,
  parse,
  validate,
} from '../graphql-js.js';
import { LRUCache } from 'lru-cache';
import type { LiveField } from './declarations.js';
import { subscriptionError, SubscriptionErrorCode, withCode } from './errors.js';

/** A graphql-ws `subscribe` payload. */
export interface SubscribeRequest {
  query: string;
  operationName?: string | null;
  variables?: Record<string, unknown> | null;
}

/** One subscription, checked: its document, its one root field's declaration and arguments. */
export interface SubscriptionPlan {
  /** The client's document, parsed and validated (shared by every subscriber of the same text). */
  document: DocumentNode;
  operation: OperationDefinitionNode;
  live: LiveField;
  /** The root field's coerced arguments. */
  args: Record<string, unknown>;
  /** The client's own values, for exactly the variables the operation defines. */
  variables: Record<string, unknown>;
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
 * is a subscription with exactly one root field that a subgraph declared with `@subscribe`, and
 * coerces its variables and the field's arguments. Returns the errors a client should get otherwise.
 */
export function planSubscription(
  schema: GraphQLSchema,
  liveFields: ReadonlyMap<string, LiveField>,
  request: SubscribeRequest,
): SubscriptionPlan | GraphQLError[] {
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
  const live = liveFields.get(fieldName);
  if (!fieldDef || !live || !root.selectionSet) {
    return [subscriptionError(SubscriptionErrorCode.BAD_REQUEST, `the gateway cannot serve subscription ${fieldName}`)];
  }

  const variableDefinitions = operation.variableDefinitions ?? [];
  const coerced = getVariableValues(schema, variableDefinitions, request.variables ?? {});
  if (coerced.errors) return coerced.errors.map((error) => withCode(error, SubscriptionErrorCode.BAD_USER_INPUT));
  const variables: Record<string, unknown> = {};
  for (const definition of variableDefinitions) {
    const name = definition.variable.name.value;
    if (request.variables && Object.hasOwn(request.variables, name)) variables[name] = request.variables[name];
  }
  let args: Record<string, unknown>;
  try {
    args = getArgumentValues(fieldDef, root, coerced.coerced);
  } catch (error) {
    if (error instanceof GraphQLError) return [withCode(error, SubscriptionErrorCode.BAD_USER_INPUT)];
    throw error;
  }
  return { document, operation, live, args, variables };
}
