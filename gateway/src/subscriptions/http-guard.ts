import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import { GraphQLError } from '../graphql-js.js';
import { SUBSCRIPTIONS_OVER_PLAIN_HTTP, SubscriptionErrorCode } from './errors.js';

/**
 * A subscription sent as a plain JSON request (without the `Accept` of SSE or multipart HTTP, which
 * are served before Apollo Server) gets a clear BAD_REQUEST naming the transports, instead of
 * reaching @apollo/gateway, which cannot execute one (it throws "Execution of subscriptions not
 * supported by gateway", an internal error). A POST is stopped once the operation is known (400). A
 * GET is refused by Apollo Server itself (405, only queries over GET); its message is replaced by
 * the same one.
 */
export function refuseSubscriptionsOverHttp<Ctx extends BaseContext>(): ApolloServerPlugin<Ctx> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ operation }) {
          if (operation?.operation === 'subscription') {
            throw new GraphQLError(SUBSCRIPTIONS_OVER_PLAIN_HTTP, {
              extensions: { code: SubscriptionErrorCode.BAD_REQUEST, http: { status: 400 } },
            });
          }
        },
        async willSendResponse({ operation, response }) {
          if (operation?.operation !== 'subscription' || response.body.kind !== 'single') return;
          response.body.singleResult.errors = [
            { message: SUBSCRIPTIONS_OVER_PLAIN_HTTP, extensions: { code: SubscriptionErrorCode.BAD_REQUEST } },
          ];
          delete response.body.singleResult.data;
        },
      };
    },
  };
}
