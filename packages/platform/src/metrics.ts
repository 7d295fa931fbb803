import { collectDefaultMetrics, Registry } from 'prom-client';

/**
 * One Prometheus registry per process, served on `/metrics` by the HTTP shell: Node's own process
 * metrics plus whatever the service registers on it. Every series carries `service`.
 */
export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

export type { Registry as MetricsRegistry } from 'prom-client';
