import { HeaderMap, type ApolloServerPlugin } from '@apollo/server';
import { httpStatusOf } from '@food/platform';
import type { GatewayContext } from '../context.js';
import type { OperationGuard } from './operation-guard.js';
import { rateLimitHeaders } from './rate-limit.js';

/**
 * The operation guard for queries and mutations over HTTP, run once the operation is known and before
 * it is planned or executed. Every response carries `RateLimit-*` headers; a refusal is a 429 (rate
 * limit) or a 400 (bounds, safelist) with the guard's coded error. Operations the gateway runs for
 * its own subscriptions (transport `websocket`) were guarded when they were subscribed.
 */
export function guardHttpOperations(guard: OperationGuard): ApolloServerPlugin<GatewayContext> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ contextValue, operation, document, source, schema, request, response }) {
          if (contextValue.transport !== 'http' || !operation) return;
          const { outcome, refusal } = await guard.takeRateBudget(
            operation.operation,
            contextValue.caller,
            contextValue.clientAddress,
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
