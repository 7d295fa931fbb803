import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const benchDir = fileURLToPath(new URL('../', import.meta.url));
export const peersDir = `${benchDir}peers/`;
export const resultsDir = `${benchDir}results/`;

/**
 * `federated`: repeat readers (32 customers in turn; caches may answer them). `federated-cold`: the same
 * query, each request from a customer the gateway has not seen within its cache's TTL, as the public
 * gateway benchmarks send. `gateway-overhead`: the public benchmarks' four fixture subgraphs (4 ms each
 * call, answering from memory) and their nested query, where the gateway is the bottleneck.
 */
export const workloadNames = [
  'one-subgraph',
  'federated',
  'federated-cold',
  'gateway-overhead',
  'mutations',
  'subscriptions',
] as const;
export type WorkloadName = (typeof workloadNames)[number];
/**
 * `base`: our gateway built from another checkout (BENCH_BASE_DIR), for before/after; never by default.
 * `hive-router`: Hive Gateway with its Rust query planner (@graphql-hive/router-runtime). `direct`: the
 * meals subgraph itself (one-subgraph only); `ceiling`: a plain Node HTTP server answering the bytes
 * of the gateway-overhead response (that workload only).
 */
export const targetNames = ['ours', 'base', 'hive', 'hive-router', 'apollo', 'direct', 'ceiling'] as const;
export type TargetName = (typeof targetNames)[number];

/**
 * The subscription workload's scenarios, run in this order on one gateway process: `order` (each
 * subscriber follows its own order), `feed` (staff on every order), `menu` (anonymous on the meals).
 */
export const scenarioNames = ['order', 'feed', 'menu'] as const;
export type ScenarioName = (typeof scenarioNames)[number];

/**
 * BENCH_REDIS: which Redis every process of the run uses. `single`: the machine's one node
 * (REDIS_URL); `cluster`: a Redis Cluster the bench starts itself (3 masters, 3 replicas); `both`:
 * everything on one node, then the workloads of `clusterComparedWorkloads` on a cluster, side by side.
 */
export const redisModes = ['single', 'cluster', 'both'] as const;
export type RedisMode = (typeof redisModes)[number];
/** What BENCH_REDIS=both measures on the cluster too (our gateway only). */
export const clusterComparedWorkloads: readonly WorkloadName[] = ['federated', 'mutations', 'subscriptions'];
/** The goal on a cluster: no compared workload below this times its one-node figure. */
export const CLUSTER_GOAL_RATIO = 0.9;

/** How the report and the chart name each target. */
export const targetLabels: Record<TargetName, string> = {
  ours: 'ours (@food/gateway)',
  base: 'ours at BENCH_BASE_DIR (before)',
  hive: 'Hive Gateway',
  'hive-router': 'Hive Gateway, Rust planner',
  apollo: 'stock @apollo/gateway',
  direct: 'meals subgraph direct',
  ceiling: 'plain HTTP server (ceiling)',
};

/** The gateways ours is compared with. */
export const peerNames = ['hive', 'hive-router', 'apollo'] as const satisfies readonly TargetName[];

export interface BenchConfig {
  quick: boolean;
  /** Measured seconds of each HTTP run, after `warmupSeconds` of the same load. */
  durationSeconds: number;
  warmupSeconds: number;
  rounds: number;
  /** Seconds of each workload through one gateway before round 1 (subgraphs and Postgres warm up). */
  backendWarmupSeconds: number;
  /**
   * federated-cold: customers in rotation (each request the next one; every measured run goes on where
   * the last one of its target stopped), at most the seed's users.
   */
  coldCustomers: number;
  /** Concurrent connections of the query workloads and of the mutation mix. */
  queryConnections: number;
  mutationConnections: number;
  workloads: WorkloadName[];
  targets: TargetName[];
  seed: { users: number; meals: number; orders: number };
  /** The subscription scenarios to run (BENCH_SUB_SCENARIOS), each at its sizes (one run per size). */
  scenarios: ScenarioName[];
  subscribers: Record<ScenarioName, number[]>;
  /** Order scenario: status changes per second, and how many subscribers' orders change (each once). */
  changeRate: number;
  changes: number;
  /** Seconds the subscribers stay idle before the gateway's memory is read. */
  subscriberIdleSeconds: number;
  /** Changes broadcast to every subscriber in the feed scenario, one per second. */
  feedChanges: number;
  /** Changes of the followed meals in the menu scenario (price and availability), one per second. */
  menuChanges: number;
  /** Menu subscribers per connection (consecutive pairs share one: a list by id and the whole menu). */
  menuPerConnection: number;
  /** Subscribes in flight at once while the subscribers connect. */
  connectConcurrency: number;
  /** Connections one subscriber client process holds at most: more subscribers, more processes. */
  socketsPerClient: number;
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
  /** The one node of `single` and `both` (REDIS_URL). */
  redisUrl: string;
  redis: RedisMode;
  /** BENCH_VOLUME=1: the volume run (issue 15) instead of the gateway comparison; see volume.ts. */
  volume?: VolumeConfig;
}

/** The volume run: orders at growing sizes, and the read mix with and without a read replica. */
export interface VolumeConfig {
  /** Orders at each measured size, ascending (the first is the ratios' base); each in its own database. */
  sizes: number[];
  /** Customers the orders are spread over (each has about size / customers orders). */
  customers: number;
  /** Of them, the last ones place orders; every other one reads (a caller returns only after all others). */
  placingCustomers: number;
  /** Rounds of each workload at each size (the median of their p50, p99 and requests/s is reported). */
  rounds: number;
  /** BENCH_QUIET_FILE: a file the run creates while it measures (and removes), for cooperating jobs to wait on. */
  quietFile?: string;
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
  // Replaced by the scenarios: an old setting would otherwise be ignored without a word.
  if (process.env.BENCH_SUB_MODE)
    throw new Error(
      'BENCH_SUB_MODE is gone: every scenario runs by default; pick some with BENCH_SUB_SCENARIOS=order,feed,menu',
    );
  if (process.env.BENCH_SUBSCRIBERS)
    throw new Error(
      'BENCH_SUBSCRIBERS is now BENCH_ORDER_SUBSCRIBERS (and BENCH_FEED_SUBSCRIBERS, BENCH_MENU_SUBSCRIBERS)',
    );
  const sizes = (name: string, fallback: string): number[] => {
    const list = (process.env[name] || fallback).split(',').map((n) => Number(n.trim()));
    if (list.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`${name}: integers, e.g. ${fallback}`);
    return list;
  };
  const baseDir = process.env.BENCH_BASE_DIR || undefined;
  const redis = (process.env.BENCH_REDIS || 'single') as RedisMode;
  if (!redisModes.includes(redis))
    throw new Error(`BENCH_REDIS: unknown "${process.env.BENCH_REDIS}" (one of ${redisModes.join(', ')})`);
  if (process.env.REDIS_CLUSTER_NODES)
    throw new Error(
      'REDIS_CLUSTER_NODES: the bench starts a Redis Cluster of its own (BENCH_REDIS=cluster or both); unset it',
    );
  if (process.env.BENCH_TARGETS?.includes('base') && !baseDir) {
    throw new Error('BENCH_TARGETS has base: set BENCH_BASE_DIR to a checkout whose gateway is built');
  }
  const volume = process.env.BENCH_VOLUME === '1' || process.env.BENCH_VOLUME === 'true';
  const rounds = int('BENCH_ROUNDS', quick ? 1 : 3);
  // Each pass's order scenario follows PAID orders of its own: BENCH_REDIS=both has 2 per round more.
  const passes = redis === 'both' ? 1 + 2 * rounds : 1;
  return {
    volume: volume ? loadVolumeConfig(sizes) : undefined,
    quick,
    durationSeconds: int('BENCH_DURATION_SECONDS', quick ? 3 : 8),
    warmupSeconds: int('BENCH_WARMUP_SECONDS', quick ? 1 : 2, 0),
    rounds,
    backendWarmupSeconds: int('BENCH_BACKEND_WARMUP_SECONDS', quick ? 2 : 5, 0),
    coldCustomers: int('BENCH_COLD_CUSTOMERS', quick ? 2_000 : 10_000, 100),
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
      orders: int('BENCH_SEED_ORDERS', (quick ? 20_000 : 100_000) * passes, 1_000),
    },
    scenarios: list('BENCH_SUB_SCENARIOS', scenarioNames),
    subscribers: {
      order: sizes('BENCH_ORDER_SUBSCRIBERS', quick ? '100,300' : '1000,5000'),
      feed: sizes('BENCH_FEED_SUBSCRIBERS', quick ? '300' : '5000'),
      menu: sizes('BENCH_MENU_SUBSCRIBERS', quick ? '1000' : '20000'),
    },
    changeRate: int('BENCH_CHANGE_RATE', 25),
    changes: int('BENCH_SUB_CHANGES', quick ? 100 : 500),
    feedChanges: int('BENCH_FEED_CHANGES', 3),
    menuChanges: int('BENCH_MENU_CHANGES', 5),
    menuPerConnection: int('BENCH_MENU_SUBSCRIPTIONS_PER_CONNECTION', 2),
    connectConcurrency: int('BENCH_SUB_CONNECT_CONCURRENCY', 64),
    socketsPerClient: int('BENCH_SOCKETS_PER_CLIENT', 5_000),
    subscriberIdleSeconds: int('BENCH_SUB_IDLE_SECONDS', 5, 0),
    noisyRetries: int('BENCH_NOISY_RETRIES', 1, 0),
    noiseBudgetSeconds: int('BENCH_NOISE_BUDGET_SECONDS', quick ? 30 : 120, 0),
    build: process.env.BENCH_BUILD !== '0',
    cpuProfileDir: process.env.BENCH_CPU_PROFILE_DIR || undefined,
    postgresUrl: process.env.BENCH_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres',
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    redis,
  };
}

function loadVolumeConfig(sizes: (name: string, fallback: string) => number[]): VolumeConfig {
  const list = sizes('BENCH_VOLUME_SIZES', '100000,1000000,10000000');
  if (list.some((n, k) => k > 0 && n <= list[k - 1]!))
    throw new Error('BENCH_VOLUME_SIZES: ascending sizes (the first is the base of the ratios), e.g. 100000,1000000');
  const customers = int('BENCH_VOLUME_CUSTOMERS', 10_000, 200);
  const placingCustomers = int('BENCH_VOLUME_PLACING_CUSTOMERS', 100);
  if (placingCustomers >= customers / 2)
    throw new Error('BENCH_VOLUME_PLACING_CUSTOMERS must be below half of BENCH_VOLUME_CUSTOMERS');
  // Every reader must have a full page (10 orders) at the smallest size.
  if (list[0]! < (customers - placingCustomers) * 10)
    throw new Error(
      `BENCH_VOLUME_SIZES: the smallest size must give every reading customer 10 orders (at least ${(customers - placingCustomers) * 10}); ` +
        'lower BENCH_VOLUME_CUSTOMERS',
    );
  return {
    sizes: list,
    customers,
    placingCustomers,
    rounds: int('BENCH_VOLUME_ROUNDS', 3),
    quietFile: process.env.BENCH_QUIET_FILE || undefined,
  };
}
