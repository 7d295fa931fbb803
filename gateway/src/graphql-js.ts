import { createRequire } from 'node:module';

/**
 * graphql-js, the one instance @apollo/gateway, Apollo Server and graphql-ws use.
 *
 * graphql 16 ships a CommonJS and an ESM build and no "exports" map. Node loads the CommonJS build
 * for every importer, but a bundler-style resolver (vitest's, which prefers "module") gives workspace
 * sources the ESM build: a second instance whose `instanceof` checks reject the gateway's schema
 * ("Cannot use GraphQLSchema from another module or realm") and whose errors graphql-ws does not
 * recognise. Loading it through `require` gives the same instance everywhere, in tests as in
 * production. Types still come from `import type ... from 'graphql'`.
 */
const graphql = createRequire(import.meta.url)('graphql') as typeof import('graphql');

export const {
  buildASTSchema,
  buildSchema,
  executeSync,
  getDirectiveValues,
  GraphQLIncludeDirective,
  GraphQLSkipDirective,
  getArgumentValues,
  getNamedType,
  getNullableType,
  getOperationAST,
  getVariableValues,
  valueFromASTUntyped,
  GraphQLError,
  isAbstractType,
  isCompositeType,
  isEnumType,
  isInputObjectType,
  isInterfaceType,
  isLeafType,
  isListType,
  isNonNullType,
  isObjectType,
  isSpecifiedScalarType,
  Kind,
  OperationTypeNode,
  parse,
  print,
  printSchema,
  Source,
  TypeInfo,
  typeFromAST,
  validate,
  valueFromAST,
  visit,
  visitWithTypeInfo,
} = graphql;
export type GraphQLError = import('graphql').GraphQLError;
/** graphql-js's `graphql()`: parse, validate and execute in one call (tests' subgraphs). */
export const executeGraphQL = graphql.graphql;
