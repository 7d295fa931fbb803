import { defineConfig } from '@graphql-hive/gateway';
import InMemoryLRUCache from '@graphql-mesh/cache-inmemory-lru';

// Hive Gateway as documented, with one addition: our subgraphs refuse any call without a signed
// internal token, so the static token the bench client sends for its identity goes on to every subgraph.
//
// BENCH_PEER_CACHE=1 (the federated workload, cache against cache): its documented response cache, per
// identity (the internal token names the caller), for 60 s as our entity cache keeps an entry, in an
// in-memory cache storage of 100,000 entries. The default storage holds 1,000, and the response cache
// keeps two index entries per entity of each response: one federated answer has dozens of entities,
// so the default could not hold the 32 callers' answers and answered none of them from the cache.
export const gatewayConfig = defineConfig({
  propagateHeaders: {
    fromClientToSubgraphs: ({ request }) => ({ 'x-internal-token': request.headers.get('x-internal-token') }),
  },
  ...(process.env.BENCH_PEER_CACHE === '1' && {
    cache: new InMemoryLRUCache({ max: 100_000 }),
    responseCaching: { session: (request: Request) => request.headers.get('x-internal-token'), ttl: 60_000 },
  }),
});
