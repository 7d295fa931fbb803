import { defineConfig } from '@graphql-hive/gateway';

// Hive Gateway as documented, with one addition: our subgraphs refuse any call without a signed
// internal token, so the static token the bench client sends for its identity goes on to every subgraph.
export const gatewayConfig = defineConfig({
  propagateHeaders: {
    fromClientToSubgraphs: ({ request }) => ({ 'x-internal-token': request.headers.get('x-internal-token') }),
  },
});
