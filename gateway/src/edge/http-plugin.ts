import { HeaderMap, type ApolloServerPlugin } from '@apollo/server';
import { httpStatusOf } from '@food/platform';
import type { GatewayContext } from '../context.js';
import { GraphQLError } from '../graphql-js.js';
import type { OperationGuard } from './operation-guard.js';
import type { ReadYourWrites } from './read-your-writes.js';
import { rateLimitHeaders } from './rate-limit.js';

/**
 * The operation guard for queries and mutations over HTTP, run once the operation is known and before
 * it is planned or executed; it also decides whether the operation reads from the primaries
 * (read-your-writes: a query does unless its caller wrote within the lag bound). A request whose operation cannot be picked (unknown operationName) is a
 * 400 here. Every response carries `RateLimit-*` headers; a refusal is a 429 (rate
 * limit) or a 400 (bounds, safelist) with the guard's coded error. Operations the gateway runs for
 * its own subscriptions (any transport but `http`) were guarded when they were subscribed.
 */
export function guardHttpOperations(
  guard: OperationGuard,
  readYourWrites: ReadYourWrites,
): ApolloServerPlugin<GatewayContext> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ contextValue, operation, document, source, schema, request, response }) {
          if (!operation) {
            // Apollo Server leaves this to the executor, and @apollo/gateway's throws an uncoded error (a 500).
            throw new GraphQLError(
              request.operationName
                ? `Unknown operation named "${request.operationName}".`
                : 'Must provide operation name if query contains multiple operations.',
              { extensions: { code: 'OPERATION_RESOLUTION_FAILURE', http: { status: 400, headers: new HeaderMap() } } },
            );
          }
          if (contextValue.transport !== 'http') return;
          const query = operation.operation === 'query';
          const { caller } = contextValue;
          const { outcome, refusal, flagged } = await guard.takeRateBudget(
            operation.operation,
            caller,
            contextValue.clientAddress,
            // Spent already by the response cache's path, when it could not answer (a query's).
            query ? contextValue.rateBudgetSpent : undefined,
            // A query reads from the primaries if its caller wrote within the lag bound: that mark is
            // read in the same call to Redis as the budget (edge/read-your-writes.ts).
            query ? readYourWrites.markOf(caller) : undefined,
          );
          contextValue.readFromPrimary = !query || (flagged ?? (await readYourWrites.wroteRecently(caller)));
          if (outcome) for (const [name, value] of rateLimitHeaders(outcome)) response.http.headers.set(name, value);
          const error =
            refusal?.error ??
            guard.checkSource(source) ??
            guard.checkOperation(schema, document, operation, request.variables);
          if (!error) return;
          const code = error.extensions.code as keyof typeof httpStatusOf;
          error.extensions.http = { status: httpStatusOf[code], headers: new HeaderMap() };
          throw error;
        },
      };
    },
  };
}
