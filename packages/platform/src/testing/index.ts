import type { ApolloServer } from '@apollo/server';
import type { GraphQLFormattedError } from 'graphql';

export interface OperationResult<T = Record<string, unknown>> {
  data: T | null | undefined;
  errors: readonly GraphQLFormattedError[] | undefined;
}

/** Runs one operation through a subgraph's Apollo Server with a given context (no HTTP). */
export async function execute<T = Record<string, unknown>, Ctx extends object = object>(
  server: ApolloServer<Ctx>,
  contextValue: Ctx,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<OperationResult<T>> {
  const response = await server.executeOperation({ query, variables }, { contextValue });
  if (response.body.kind !== 'single') throw new Error('incremental delivery is not expected here');
  const { data, errors } = response.body.singleResult;
  return { data: data as T | null | undefined, errors };
}

/** The `extensions.code` of each error, for assertions. */
export const errorCodes = (result: OperationResult<unknown>) => (result.errors ?? []).map((e) => e.extensions?.code);

export const testSecrets = {
  INTERNAL_TOKEN_SECRET: 'test-internal-token-secret-0123456789abcdef',
  JWT_SECRET: 'test-jwt-secret-0123456789abcdef0123456789',
};
