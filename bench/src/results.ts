import type { TargetName } from './config.js';
import type { LoadResult } from './load-client.js';
import type { SubscriptionRun } from './subscriptions.js';
import type { EntityCacheCounts, HttpWorkload } from './workloads.js';

export interface HttpRun {
  workload: HttpWorkload;
  target: TargetName;
  round: number;
  result?: LoadResult;
  cpu: Record<string, number>;
  gatewayPeakRss: number;
  /** Measurements taken: a run disturbed by other work on the machine is repeated. */
  attempts?: number;
  /** CPU % of one core that other processes (not the bench's) used just before the run. */
  otherCpuBefore?: number;
  /** Requests each subgraph served during the measured window. */
  subgraphRequests: Record<string, number>;
  /** Ours: its entity cache's hits and misses during the measured window, by type. */
  entityCache?: EntityCacheCounts;
  /** Why this run is not a result (errors in the verification request or during the load). */
  problems: string[];
}

export interface BenchResults {
  date: string;
  wallSeconds: number;
  machine: { cpu: string; cores: number; memoryGiB: number; os: string; loadAverageAtStart?: string };
  versions: Record<string, string>;
  settings: Record<string, string | number | boolean>;
  notes: string[];
  /** Problems outside any one run (a step that failed, a goal that could not be measured). */
  errors: string[];
  /** Which Redis the runs used (no credentials): `single` and/or `cluster`, as BENCH_REDIS asked. */
  redis: RedisUsed;
  runs: HttpRun[];
  subscriptions: SubscriptionRun[];
  /**
   * BENCH_REDIS=both: the compared workloads (federated, mutations, subscriptions; our gateway) on a
   * Redis Cluster (`cluster`) and on the one node again (`clusterBaseline`), in pairs of passes taken
   * one after the other (round r of each is pair r), so that the machine's drift over the run falls on
   * both sides of each ratio. `runs` and `subscriptions` above are the main pass's (every target, one node).
   */
  cluster?: { runs: HttpRun[]; subscriptions: SubscriptionRun[] };
  clusterBaseline?: { runs: HttpRun[]; subscriptions: SubscriptionRun[] };
}

export type RedisUsed = Partial<Record<'single' | 'cluster', string>>;

/** CPU % of one core used by processes outside the bench above which a run counts as disturbed. */
export const NOISY_CPU = 20;

export const isValid = (run: HttpRun) => run.result !== undefined && run.problems.length === 0;

export function problemsOf(result: LoadResult): string[] {
  const problems: string[] = [];
  if (result.non2xx > 0) problems.push(`${result.non2xx} non-2xx responses (${JSON.stringify(result.statusCodes)})`);
  if (result.graphqlErrors > 0) problems.push(`${result.graphqlErrors} responses with GraphQL errors`);
  if (result.connectionErrors > 0) problems.push(`${result.connectionErrors} connection errors`);
  if (result.timeouts > 0) problems.push(`${result.timeouts} timeouts`);
  if (result.resets > 0) problems.push(`${result.resets} mutation pairs abandoned`);
  if (result.responses === 0) problems.push('no responses');
  return problems;
}

export const median = (values: number[]): number => {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

export interface Summary {
  workload: HttpWorkload;
  target: TargetName;
  validRuns: number;
  runs: number;
  rps: number;
  p50: number;
  p99: number;
  gatewayCpu: number;
  gatewayPeakRss: number;
  cpu: Record<string, number>;
  /** Subgraph requests per response the target gave (fewer: deduplicated or cached). */
  subgraphCallsPerResponse: number;
  bodyBytes: number;
  errors: number;
}

/** Medians over the valid rounds of one workload on one target. */
export function summarize(results: BenchResults, workload: HttpWorkload, target: TargetName): Summary | undefined {
  const all = results.runs.filter((run) => run.workload === workload && run.target === target);
  if (all.length === 0) return undefined;
  const valid = all.filter(isValid);
  const cpuKeys = [...new Set(valid.flatMap((run) => Object.keys(run.cpu)))];
  return {
    workload,
    target,
    validRuns: valid.length,
    runs: all.length,
    rps: median(valid.map((run) => run.result!.rps)),
    p50: median(valid.map((run) => run.result!.latencyMs.p50)),
    p99: median(valid.map((run) => run.result!.latencyMs.p99)),
    gatewayCpu: median(valid.map((run) => run.cpu.gateway ?? NaN)),
    gatewayPeakRss: Math.max(0, ...valid.map((run) => run.gatewayPeakRss)),
    cpu: Object.fromEntries(cpuKeys.map((key) => [key, median(valid.map((run) => run.cpu[key] ?? NaN))])),
    subgraphCallsPerResponse: median(
      valid.map(
        (run) =>
          Object.values(run.subgraphRequests).reduce((sum, n) => sum + n, 0) / Math.max(1, run.result!.responses),
      ),
    ),
    bodyBytes: median(valid.map((run) => run.result!.bodyBytes.mean)),
    errors: all.reduce(
      (sum, run) =>
        sum +
        (run.result
          ? run.result.non2xx + run.result.graphqlErrors + run.result.connectionErrors + run.result.timeouts
          : 0) +
        (run.result ? 0 : 1),
      0,
    ),
  };
}

/** Ours / peer, round by round (only rounds where both are valid), then the median of those ratios. */
export function pairedRatio(
  results: BenchResults,
  workload: HttpWorkload,
  peer: TargetName,
  value: (result: LoadResult) => number,
): { median: number; perRound: number[] } {
  const perRound: number[] = [];
  const rounds = [...new Set(results.runs.map((run) => run.round))].sort((a, b) => a - b);
  for (const round of rounds) {
    const find = (target: TargetName) =>
      results.runs.find((run) => run.workload === workload && run.target === target && run.round === round);
    const ours = find('ours');
    const other = find(peer);
    if (ours && other && isValid(ours) && isValid(other)) perRound.push(value(ours.result!) / value(other.result!));
  }
  return { median: median(perRound), perRound };
}
