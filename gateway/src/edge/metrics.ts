import { counter } from '@food/platform';

/** What the gateway's edge counts, on its `/metrics` (per replica; Prometheus sums them). */
export function createEdgeMetrics() {
  return {
    entityCacheHits: counter(
      'gateway_entity_cache_hits_total',
      'Entities answered from the entity cache, without calling their subgraph.',
      ['type'],
    ),
    entityCacheMisses: counter(
      'gateway_entity_cache_misses_total',
      'Entities of a cached type that had to be fetched from their subgraph.',
      ['type'],
    ),
    responseCacheHits: counter(
      'gateway_response_cache_hits_total',
      'Requests answered whole from the response cache, by the scope of the kept answer (PUBLIC or PRIVATE).',
      ['scope'],
    ),
    responseCacheMisses: counter(
      'gateway_response_cache_misses_total',
      'Requests the response cache looked up and did not hold.',
      [],
    ),
    responseCacheStores: counter(
      'gateway_response_cache_stores_total',
      'Answers kept by the response cache, by scope.',
      ['scope'],
    ),
    responseCacheInvalidations: counter(
      'gateway_response_cache_invalidations_total',
      'Kept answers dropped because an entity in them changed.',
      [],
    ),
    rateLimited: counter('gateway_rate_limited_total', 'Operations refused with RATE_LIMITED, by budget.', [
      'scope',
      'operation',
    ]),
    refused: counter(
      'gateway_operations_refused_total',
      'Operations refused before any subgraph was called, by the bound or list that refused them.',
      ['reason'],
    ),
  };
}

export type EdgeMetrics = ReturnType<typeof createEdgeMetrics>;
