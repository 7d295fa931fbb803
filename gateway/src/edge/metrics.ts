import { Counter, type Registry } from 'prom-client';

/** What the gateway's edge counts, on its `/metrics` (per replica; Prometheus sums them). */
export function createEdgeMetrics(registry: Registry) {
  return {
    entityCacheHits: new Counter({
      name: 'gateway_entity_cache_hits_total',
      help: 'Entities answered from the entity cache, without calling their subgraph.',
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    entityCacheMisses: new Counter({
      name: 'gateway_entity_cache_misses_total',
      help: 'Entities of a cached type that had to be fetched from their subgraph.',
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: 'gateway_rate_limited_total',
      help: 'Operations refused with RATE_LIMITED, by budget.',
      labelNames: ['scope', 'operation'] as const,
      registers: [registry],
    }),
    refused: new Counter({
      name: 'gateway_operations_refused_total',
      help: 'Operations refused before any subgraph was called, by the bound or list that refused them.',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
  };
}

export type EdgeMetrics = ReturnType<typeof createEdgeMetrics>;
