import { HeaderMap, type ApolloServerPlugin } from '@apollo/server';
import { httpStatusOf } from '@food/platform';
import type { GatewayContext } from '../context.js';
import { GraphQLError } from '../graphql-js.js';
import type { OperationGuard } from './operation-guard.js';
import { rateLimitHeaders } from './rate-limit.js';

/**
 * The operation guard for queries and mutations over HTTP, run once the operation is known and before
 * it is planned or executed. A request whose operation cannot be picked (unknown operationName) is a
 * 400 here. Every response carries `RateLimit-*` headers; a refusal is a 429 (rate
 * limit) or a 400 (bounds, safelist) with the guard's coded error. Operations the gateway runs for
 * its own subscriptions (any transport but `http`) were guarded when they were subscribed.
 */
export function guardHttpOperations(guard: OperationGuard): ApolloServerPlugin<GatewayContext> {
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
          const { outcome, refusal } = await guard.takeRateBudget(
            operation.operation,
            contextValue.caller,
            contextValue.clientAddress,
            // Spent already by the response cache's path, when it could not answer (a query's).
            operation.operation === 'query' ? contextValue.rateBudgetSpent : undefined,
          );
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
