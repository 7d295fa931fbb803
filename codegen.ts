import type { CodegenConfig } from '@graphql-codegen/cli';

/**
 * Resolver types for every subgraph, generated from its `schema.graphql` (the source of truth), and
 * typed documents for the frontend's operations under operations/.
 * Each GraphQL type listed here is mapped to `<Type>Model`, exported by the subgraph's
 * `src/resolvers/mappers.ts`, so resolvers are checked against both the SDL and the data they get.
 */
const mappedTypes = {
  users: ['User'],
  meals: ['Meal', 'Category', 'MealAddon', 'MealComponent'],
  orders: ['Order', 'OrderItem', 'OrderItemAddon', 'OrderStatusChange', 'KitchenQueueConnection', 'User', 'Meal'],
  payments: ['Payment', 'Order'],
} as const;

const config: CodegenConfig = {
  overwrite: true,
  generates: {
    // The frontend's operations, as typed documents against the public API schema.
    'operations/src/__generated__/graphql.ts': {
      schema: 'gateway/api-schema.graphql',
      documents: 'operations/src/**/*.graphql',
      plugins: ['typescript-operations', 'typed-document-node'],
      config: {
        scalars: { DateTime: 'string' },
        enumsAsTypes: true,
        useTypeImports: true,
        avoidOptionals: { field: true, inputValue: false },
        maybeValue: 'T | null',
        inputMaybeValue: 'T | null | undefined',
      },
    },
    ...Object.fromEntries(
      Object.entries(mappedTypes).map(([subgraph, types]) => [
        `subgraphs/${subgraph}/src/__generated__/resolvers-types.ts`,
        {
          schema: `subgraphs/${subgraph}/schema.graphql`,
          plugins: ['typescript', 'typescript-resolvers'],
          config: {
            federation: true,
            useIndexSignature: true,
            contextType: '../context.js#SubgraphContext',
            mappers: Object.fromEntries(types.map((type) => [type, `../resolvers/mappers.js#${type}Model`])),
            scalars: { DateTime: 'Date | string' },
            enumsAsTypes: true,
            useTypeImports: true,
            emitLegacyCommonJSImports: false,
            maybeValue: 'T | null',
            inputMaybeValue: 'T | null | undefined',
          },
        },
      ]),
    ),
  },
};

export default config;
