import type {
  DocumentNode,
  FieldNode,
  FragmentDefinitionNode,
  GraphQLCompositeType,
  GraphQLField,
  GraphQLSchema,
  OperationDefinitionNode,
  SelectionSetNode,
} from 'graphql';
import {
  getNamedType,
  GraphQLError,
  isCompositeType,
  isInterfaceType,
  isLeafType,
  isObjectType,
  Kind,
  valueFromAST,
} from '../graphql-js.js';
import { ErrorCode } from '@food/platform';

/** What one operation may ask for. Every bound is checked before any subgraph is called. */
export interface QueryBounds {
  /** Nesting of fields: `{ a { b } }` has depth 2. */
  maxDepth: number;
  /** Fields asked for under another name (`x: item(id: 1)`), counted everywhere in the operation. */
  maxAliases: number;
  /** Fields at the top of the operation (each a separate entry point, often a separate subgraph call). */
  maxRootFields: number;
  /** Estimated objects resolved (see `measureOperation`). */
  maxCost: number;
  /** Length of the document in bytes (UTF-8). */
  maxDocumentBytes: number;
}

export type QueryBound = keyof QueryBounds;

export interface OperationMeasure {
  depth: number;
  aliases: number;
  rootFields: number;
  cost: number;
}

/**
 * Measures an operation (already validated against `schema`), with fragments expanded.
 * Cost: every field that returns an object costs one, times the list sizes above it; a field's list
 * size is its `first` or `last` argument (a variable's value, else the argument's default), or 1.
 * So `items(first: 20) { edges { node { owner { name } } } }` costs 1 + 20 x 3 = 61.
 * Introspection (`__schema`, `__type`) is not counted: its shape is fixed by the schema.
 */
export function measureOperation(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  variables: Record<string, unknown> = {},
): OperationMeasure {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  const rootType = schema.getRootType(operation.operation);
  const measure: OperationMeasure = { depth: 0, aliases: 0, rootFields: 0, cost: 0 };
  if (!rootType) return measure;

  const sizeOf = (field: GraphQLField<unknown, unknown>, node: FieldNode): number => {
    for (const name of ['first', 'last']) {
      const definition = field.args.find((arg) => arg.name === name);
      if (!definition) continue;
      const argument = node.arguments?.find((arg) => arg.name.value === name);
      const value = argument ? valueFromAST(argument.value, definition.type, variables) : definition.defaultValue;
      if (typeof value === 'number') return Math.max(0, value);
    }
    return 1;
  };

  const walk = (
    selectionSet: SelectionSetNode,
    parentType: GraphQLCompositeType,
    depth: number,
    multiplier: number,
    atRoot: boolean,
  ): void => {
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FRAGMENT_SPREAD) {
        const fragment = fragments.get(selection.name.value);
        if (!fragment) continue;
        const type = schema.getType(fragment.typeCondition.name.value);
        if (isCompositeType(type)) walk(fragment.selectionSet, type, depth, multiplier, atRoot);
        continue;
      }
      if (selection.kind === Kind.INLINE_FRAGMENT) {
        const type = selection.typeCondition ? schema.getType(selection.typeCondition.name.value) : parentType;
        if (isCompositeType(type)) walk(selection.selectionSet, type, depth, multiplier, atRoot);
        continue;
      }
      const name = selection.name.value;
      if (name.startsWith('__')) continue;
      if (selection.alias) measure.aliases += 1;
      if (atRoot) measure.rootFields += 1;
      measure.depth = Math.max(measure.depth, depth + 1);
      const field = isObjectType(parentType) || isInterfaceType(parentType) ? parentType.getFields()[name] : undefined;
      if (!field) continue;
      const type = getNamedType(field.type);
      if (isLeafType(type) || !selection.selectionSet || !isCompositeType(type)) continue;
      measure.cost += multiplier;
      walk(selection.selectionSet, type, depth + 1, multiplier * sizeOf(field, selection), false);
    }
  };
  walk(operation.selectionSet, rootType, 0, 1, true);
  return measure;
}

const describe: Record<Exclude<QueryBound, 'maxDocumentBytes'>, [keyof OperationMeasure, string]> = {
  maxDepth: ['depth', 'Query depth'],
  maxAliases: ['aliases', 'Number of aliases'],
  maxRootFields: ['rootFields', 'Number of root fields'],
  maxCost: ['cost', 'Query cost'],
};

/** The first bound the operation exceeds, as the error the client gets; undefined if within all. */
export function exceededBound(measure: OperationMeasure, bounds: QueryBounds): GraphQLError | undefined {
  for (const [bound, [key, label]] of Object.entries(describe) as [
    Exclude<QueryBound, 'maxDocumentBytes'>,
    [keyof OperationMeasure, string],
  ][]) {
    if (measure[key] > bounds[bound]) return queryLimitExceeded(bound, label, measure[key], bounds[bound]);
  }
  return undefined;
}

/** The document-size bound: checked on the text, before anything else looks at it. */
export function documentTooLarge(source: string, bounds: QueryBounds): GraphQLError | undefined {
  const bytes = Buffer.byteLength(source, 'utf8');
  if (bytes <= bounds.maxDocumentBytes) return undefined;
  return queryLimitExceeded('maxDocumentBytes', 'Document size in bytes', bytes, bounds.maxDocumentBytes);
}

const queryLimitExceeded = (bound: QueryBound, label: string, actual: number, max: number) =>
  new GraphQLError(`${label} ${actual} exceeds the maximum of ${max}`, {
    extensions: { code: ErrorCode.QUERY_LIMIT_EXCEEDED, bound, max, actual },
  });
