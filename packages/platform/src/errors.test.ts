import { ApolloServer } from '@apollo/server';
import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { ErrorCode, formatError } from './errors.js';

/** Runs `{ boom }` on an Apollo server whose resolver throws `thrown`, formatted as every service formats. */
async function answerWhenThrown(thrown: unknown) {
  const logged: unknown[] = [];
  const server = new ApolloServer({
    typeDefs: 'type Query { boom: String }',
    resolvers: {
      Query: {
        boom: () => {
          throw thrown;
        },
      },
    },
    formatError: (formatted, error) => formatError(formatted, error, (unexpected) => logged.push(unexpected)),
  });
  await server.start();
  try {
    const response = await server.executeOperation({ query: '{ boom }' });
    if (response.body.kind !== 'single') throw new Error('expected a single result');
    return { errors: response.body.singleResult.errors, logged };
  } finally {
    await server.stop();
  }
}

describe('formatError', () => {
  it('answers an unexpected error with a generic message, never its own, and logs it', async () => {
    const thrown = new Error('relation "orders" does not exist at /srv/app/orders-store.ts:99');
    const { errors, logged } = await answerWhenThrown(thrown);
    expect(errors).toEqual([
      {
        message: 'Internal server error',
        path: ['boom'],
        locations: [{ line: 1, column: 3 }],
        extensions: { code: 'INTERNAL_SERVER_ERROR' },
      },
    ]);
    expect(logged).toEqual([thrown]);
  });

  it('keeps a GraphQL error made INTERNAL_SERVER_ERROR on purpose (a subgraph’s, relayed), without a stack', async () => {
    const relayed = new GraphQLError('Internal server error', {
      extensions: { code: 'INTERNAL_SERVER_ERROR', serviceName: 'orders' },
    });
    const formatted = formatError(
      { message: relayed.message, extensions: { ...relayed.extensions, stacktrace: ['at x'] } },
      relayed,
    );
    expect(formatted).toEqual({
      message: 'Internal server error',
      extensions: { code: 'INTERNAL_SERVER_ERROR', serviceName: 'orders' },
    });
  });

  it('answers a transaction that could not start in time (Prisma P2028) as retryable UPSTREAM_UNAVAILABLE', async () => {
    const busy = Object.assign(new Error('Transaction API error: Unable to start a transaction in the given time.'), {
      code: 'P2028',
    });
    const { errors, logged } = await answerWhenThrown(busy);
    expect(errors?.map((error) => [error.message, error.extensions])).toEqual([
      ['The database is unavailable; try again shortly', { code: ErrorCode.UPSTREAM_UNAVAILABLE }],
    ]);
    expect(logged).toEqual([]);
  });
});
