import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const benchDir = fileURLToPath(new URL('../', import.meta.url));
export const peersDir = `${benchDir}peers/`;
export const resultsDir = `${benchDir}results/`;

export const workloadNames = ['one-subgraph', 'federated', 'mutations', 'subscriptions'] as const;
export type WorkloadName = (typeof workloadNames)[number];
/** `base`: our gateway built from another checkout (BENCH_BASE_DIR), for before/after; never by default. */
export const targetNames = ['ours', 'base', 'hive', 'apollo', 'direct'] as const;
export type TargetName = (typeof targetNames)[number];

/** How the report and the chart name each target. */
export const targetLabels: Record<TargetName, string> = {
  ours: 'ours (@food/gateway)',
  base: 'ours at BENCH_BASE_DIR (before)',
  hive: 'Hive Gateway',
  apollo: 'stock @apollo/gateway',
  direct: 'meals subgraph direct',
};

export interface BenchConfig {
  quick: boolean;
  /** Measured seconds of each HTTP run, after `warmupSeconds` of the same load. */
  durationSeconds: number;
  warmupSeconds: number;
  rounds: number;
  /** Seconds of each workload through one gateway before round 1 (subgraphs and Postgres warm up). */
  backendWarmupSeconds: number;
  /** Concurrent connections of the query workloads and of the mutation mix. */
  queryConnections: number;
  mutationConnections: number;
  workloads: WorkloadName[];
  targets: TargetName[];
  seed: { users: number; meals: number; orders: number };
  subscribers: number[];
  /** `order`: each subscriber on its own order; `feed`: every subscriber on the STAFF feed. */
  subscriptionMode: 'order' | 'feed';
  /** Order mode: status changes per second, and how many subscribers' orders change (each once). */
  changeRate: number;
  changes: number;
  /** Seconds the subscribers stay idle before the gateway's memory is read. */
  subscriberIdleSeconds: number;
  /** Changes broadcast to every subscriber in feed mode. */
  feedChanges: number;
  /** How many times a run disturbed by other work on the machine is repeated. */
  noisyRetries: number;
  /** Seconds the whole bench may spend waiting out other work and repeating disturbed runs. */
  noiseBudgetSeconds: number;
  /** Run the built dist/ (after `pnpm build`) or, with BENCH_BUILD=0, the sources through tsx. */
  build: boolean;
  /** BENCH_BASE_DIR: a checkout (e.g. a git worktree) whose built gateway is the `base` target. */
  baseDir?: string;
  /** BENCH_CPU_PROFILE_DIR: our processes run with `--cpu-prof`, one directory per process. */
  cpuProfileDir?: string;
  postgresUrl: string;
  redisUrl: string;
}

const int = (name: string, fallback: number, min = 1): number => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be an integer >= ${min}, got "${raw}"`);
  return value;
};

function list<T extends string>(name: string, allowed: readonly T[], fallback: readonly T[] = allowed): T[] {
  const raw = process.env[name];
  if (!raw) return [...fallback];
  const picked = raw
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
  for (const item of picked) {
    if (!allowed.includes(item as T)) throw new Error(`${name}: unknown "${item}" (one of ${allowed.join(', ')})`);
  }
  return allowed.filter((item) => picked.includes(item));
}

export function loadBenchConfig(): BenchConfig {
  const quick = process.env.BENCH_QUICK === '1' || process.env.BENCH_QUICK === 'true';
  const mode = process.env.BENCH_SUB_MODE ?? 'order';
  if (mode !== 'order' && mode !== 'feed') throw new Error(`BENCH_SUB_MODE must be order or feed, got "${mode}"`);
  const subscribers = (process.env.BENCH_SUBSCRIBERS ?? (quick ? '100,300' : '1000,5000'))
    .split(',')
    .map((n) => Number(n.trim()));
  if (subscribers.some((n) => !Number.isInteger(n) || n < 1))
    throw new Error('BENCH_SUBSCRIBERS: integers, e.g. 1000,5000');
  const baseDir = process.env.BENCH_BASE_DIR || undefined;
  if (process.env.BENCH_TARGETS?.includes('base') && !baseDir) {
    throw new Error('BENCH_TARGETS has base: set BENCH_BASE_DIR to a checkout whose gateway is built');
  }
  return {
    quick,
    durationSeconds: int('BENCH_DURATION_SECONDS', quick ? 3 : 8),
    warmupSeconds: int('BENCH_WARMUP_SECONDS', quick ? 1 : 2, 0),
    rounds: int('BENCH_ROUNDS', quick ? 1 : 3),
    backendWarmupSeconds: int('BENCH_BACKEND_WARMUP_SECONDS', quick ? 2 : 5, 0),
    queryConnections: int('BENCH_CONNECTIONS', 32),
    mutationConnections: int('BENCH_MUTATION_CONNECTIONS', 16),
    workloads: list('BENCH_WORKLOADS', workloadNames),
    targets: list(
      'BENCH_TARGETS',
      targetNames,
      targetNames.filter((name) => name !== 'base'),
    ),
    baseDir,
    seed: {
      users: int('BENCH_SEED_USERS', quick ? 2_000 : 10_000, 100),
      meals: int('BENCH_SEED_MEALS', quick ? 200 : 1_000, 20),
      orders: int('BENCH_SEED_ORDERS', quick ? 20_000 : 100_000, 1_000),
    },
    subscribers,
    subscriptionMode: mode,
    changeRate: int('BENCH_CHANGE_RATE', 25),
    changes: int('BENCH_SUB_CHANGES', quick ? 100 : 500),
    feedChanges: int('BENCH_FEED_CHANGES', 3),
    subscriberIdleSeconds: int('BENCH_SUB_IDLE_SECONDS', 5, 0),
    noisyRetries: int('BENCH_NOISY_RETRIES', 1, 0),
    noiseBudgetSeconds: int('BENCH_NOISE_BUDGET_SECONDS', quick ? 30 : 120, 0),
    build: process.env.BENCH_BUILD !== '0',
    cpuProfileDir: process.env.BENCH_CPU_PROFILE_DIR || undefined,
    postgresUrl: process.env.BENCH_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres',
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  };
}
