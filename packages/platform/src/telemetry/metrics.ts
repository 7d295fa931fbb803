import { collectDefaultMetrics, Counter, Gauge, Histogram, register, type Registry } from 'prom-client';

/**
 * The process's Prometheus registry, served on `/metrics` by every HTTP shell of the process.
 *
 * One registry per process (prom-client's global one), because a metric belongs to the process
 * Prometheus scrapes, not to an object in it: the dev start command runs the gateway, four
 * subgraphs and two workers in one process and each of its ports answers with the same numbers.
 * No `service` label is added: Prometheus labels every series with its target (`job`, `pod`,
 * `service`), and a label of ours by that name would be renamed `exported_service`. Series that
 * several servers of one process share say whose they are (`server`, `subgraph`, `outbox`, `queue`).
 */
export function processMetrics(): Registry {
  if (!defaultsCollected) {
    defaultsCollected = true;
    collectDefaultMetrics({ register });
  }
  return register;
}
let defaultsCollected = false;

/** Latency buckets (seconds) for GraphQL requests and subgraph fetches: 5 ms to 10 s. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * A metric is made once per process and shared by every object that reports it (two gateways in a
 * test process, or a relay restarted after a failure, add to the same series).
 */
function once<M>(name: string, make: () => M): M {
  return (register.getSingleMetric(name) as M | undefined) ?? make();
}

export const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
  once(name, () => new Counter<L>({ name, help, labelNames }));

export const histogram = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
  once(name, () => new Histogram<L>({ name, help, labelNames, buckets: LATENCY_BUCKETS }));

/**
 * A gauge read when Prometheus scrapes. Each source (a relay, a queue, a subscription server)
 * registers itself while it runs; the gauge reports what the live sources say at scrape time. A
 * source that fails to answer (its database away) is left out of that scrape.
 */
export class SampledGauge<L extends string> {
  private readonly sources = new Set<() => Promise<[Partial<Record<L, string>>, number][]>>();

  constructor(name: string, help: string, labelNames: readonly L[]) {
    const sources = this.sources;
    once(
      name,
      () =>
        new Gauge<L>({
          name,
          help,
          labelNames,
          async collect() {
            this.reset();
            const samples = await Promise.all([...sources].map((read) => read().catch(() => [])));
            // Sources with the same labels add up (two gateways in one test process).
            for (const [labels, value] of samples.flat()) this.inc(labels, value);
          },
        }),
    );
  }

  /** Adds a source; the returned function removes it (call it when the source stops). */
  track(read: () => Promise<[Partial<Record<L, string>>, number][]>): () => void {
    this.sources.add(read);
    return () => this.sources.delete(read);
  }
}

const sampledGauges = new Map<string, SampledGauge<string>>();
export function sampledGauge<L extends string>(name: string, help: string, labelNames: readonly L[]): SampledGauge<L> {
  let found = sampledGauges.get(name);
  if (!found) sampledGauges.set(name, (found = new SampledGauge(name, help, labelNames)));
  return found as unknown as SampledGauge<L>;
}
