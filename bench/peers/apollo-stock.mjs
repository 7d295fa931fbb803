import { readFileSync } from 'node:fs';
import { ApolloGateway, RemoteGraphQLDataSource } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import responseCachePlugin from '@apollo/server-plugin-response-cache';

// Stock @apollo/gateway + @apollo/server standalone with their default options. The one addition:
// our subgraphs refuse any call without a signed internal token, so the static token the bench client
// sends for its identity is passed on to every subgraph (willSendRequest).
//
// BENCH_PEER_CACHE=1 (the federated workload, cache against cache): Apollo Server's response cache
// plugin, per identity (sessionId: the internal token names the caller). Our subgraphs give no maxAge
// (their @cacheControl names only scopes; our gateway's entity cache has a TTL of its own), so every
// response is given a private policy of 60 s, our cache's TTL, before the plugin stores it (Apollo's
// documented overallCachePolicy, set from a plugin); without that the gateway would store nothing.
const cached = process.env.BENCH_PEER_CACHE === '1';
const sixtySecondsPerCaller = {
  async requestDidStart() {
    return {
      async willSendResponse({ overallCachePolicy, response }) {
        if (response.body.kind === 'single' && !response.body.singleResult.errors) {
          overallCachePolicy.replace({ maxAge: 60, scope: 'PRIVATE' });
        }
      },
    };
  },
};

class InternalTokenDataSource extends RemoteGraphQLDataSource {
  willSendRequest({ request, context }) {
    if (context.internalToken) request.http?.headers.set('x-internal-token', context.internalToken);
  }
}

const gateway = new ApolloGateway({
  supergraphSdl: readFileSync(process.env.SUPERGRAPH_PATH, 'utf8'),
  buildService: ({ url }) => new InternalTokenDataSource({ url }),
});
const server = new ApolloServer({
  gateway,
  plugins: cached
    ? [
        sixtySecondsPerCaller,
        responseCachePlugin({
          sessionId: async ({ request }) => request.http?.headers.get('x-internal-token') ?? null,
        }),
      ]
    : [],
});
const { url } = await startStandaloneServer(server, {
  listen: { host: '127.0.0.1', port: Number(process.env.PORT) },
  context: async ({ req }) => ({ internalToken: req.headers['x-internal-token'] }),
});
console.log(`stock apollo gateway ready at ${url}${cached ? ' (response cache on)' : ''}`);
