import { readFileSync } from 'node:fs';
import { ApolloGateway, RemoteGraphQLDataSource } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';

// Stock @apollo/gateway + @apollo/server standalone with their default options. The one addition:
// our subgraphs refuse any call without a signed internal token, so the static token the bench client
// sends for its identity is passed on to every subgraph (willSendRequest).
class InternalTokenDataSource extends RemoteGraphQLDataSource {
  willSendRequest({ request, context }) {
    if (context.internalToken) request.http?.headers.set('x-internal-token', context.internalToken);
  }
}

const gateway = new ApolloGateway({
  supergraphSdl: readFileSync(process.env.SUPERGRAPH_PATH, 'utf8'),
  buildService: ({ url }) => new InternalTokenDataSource({ url }),
});
const server = new ApolloServer({ gateway });
const { url } = await startStandaloneServer(server, {
  listen: { host: '127.0.0.1', port: Number(process.env.PORT) },
  context: async ({ req }) => ({ internalToken: req.headers['x-internal-token'] }),
});
console.log(`stock apollo gateway ready at ${url}`);
