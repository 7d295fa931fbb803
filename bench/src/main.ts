import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { Cluster } from 'ioredis';
import pg from 'pg';
import {
  connectRedis,
  describeRedisTarget,
  generateSigningJwk,
  InternalTokens,
  signingKeysEnv,
  UserTokenSigner,
  type RedisTarget,
} from '@food/platform';
import { deleteKeys, RedisClusterProcess, redisEnvOf } from '@food/platform/testing';
import {
  clusterComparedWorkloads,
  peerNames,
  loadBenchConfig,
  repoRoot,
  resultsDir,
  type RedisMode,
  type ScenarioName,
  type TargetName,
  type VolumeConfig,
  type WorkloadName,
} from './config.js';
import { runVolume, type VolumeResults } from './volume.js';
import { volumeMarkdown } from './volume-report.js';
import { ensurePeers, peerVersion } from './peers.js';
import {
  CpuWindow,
  fdLimit,
  pidsNamed,
  raisedLimits,
  sleep,
  start,
  stopAll,
  stopRunning,
  type CpuGroups,
} from './procs.js';
import { markdown } from './report.js';
import { svgChart } from './chart.js';
import { NOISY_CPU, problemsOf, type BenchResults, type HttpRun } from './results.js';
import {
  availableMeal,
  BENCH_PASSWORD,
  createDatabases,
  customerEmail,
  customerOf,
  dropDatabases,
  mealId,
  menuMeals,
  migrate,
  orderId,
  paidOrders,
  seed,
  serviceKeysEnv,
  STAFF_EMAIL,
  staleDatabases,
  userId,
  type BenchDatabase,
  type Secrets,
} from './seed.js';
import { CHANGE_MEAL, CHANGE_ORDER, FEED, MENU, TRACK } from './live-operations.js';
import type { Subscriber } from './subscriber-client.js';
import { runScenario, type ScenarioSetup, type SubscriptionRun } from './subscriptions.js';
import { OVERHEAD_DELAY_MS, OVERHEAD_QUERY, startOverheadBackend, type OverheadBackend } from './overhead/index.js';
import {
  startBackend,
  startTarget,
  workers,
  writeSupergraph,
  type Backend,
  type Launch,
  type RunningTarget,
} from './targets.js';
import { appliesTo, loadSpec, measure, onFixtures, verify, type HttpWorkload, type Identities } from './workloads.js';
import type { LoadSpec } from './load-client.js';

const config = loadBenchConfig();
const startedAt = Date.now();
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const runId = randomBytes(4).toString('hex');
const rawDir = `${resultsDir}raw/`;
const logDir = `${rawDir}logs/${stamp}`;
const redisPrefix = `bench-${runId}`;
const rateLimit = process.env.BENCH_RATE_LIMIT ?? '1000000';
{
  // Every subscriber connects from 127.0.0.1: the gateway's address budget counts all of a run's subscribes.
  const subscribes = config.workloads.includes('subscriptions')
    ? config.scenarios.flatMap((scenario) => config.subscribers[scenario]).reduce((a, b) => a + b, 0)
    : 0;
  if (Number(rateLimit) !== 0 && Number(rateLimit) < subscribes) {
    throw new Error(
      `BENCH_RATE_LIMIT=${rateLimit} is below this run's ${subscribes} subscribes, all from one address: ` +
        'the gateway would refuse some. Raise it (at most 1000000) or set 0 (no limit).',
    );
  }
}

const elapsed = () => {
  const s = Math.round((Date.now() - startedAt) / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
};
const log = (line: string) => console.log(`[bench ${elapsed()}] ${line}`);

let databases: BenchDatabase[] = [];
/** What else the clean-up must undo (the volume run's Postgres primary + standby). */
const undos: (() => Promise<void>)[] = [];
/** The Redis Clusters this run started (BENCH_REDIS=cluster or both), removed by the clean-up. */
const clusters: RedisClusterProcess[] = [];
let cleaning: Promise<void> | undefined;
/** Stops every process this run started, drops its databases, deletes its Redis keys and its cluster; once. */
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    await stopAll().catch((error: unknown) => log(`stopping processes: ${String(error)}`));
    for (const undo of undos.splice(0)) await undo().catch((error: unknown) => log(`cleaning up: ${String(error)}`));
    if (databases.length > 0) {
      await dropDatabases(
        config.postgresUrl,
        databases.map((db) => db.name),
      ).catch((error: unknown) => log(`dropping databases: ${String(error)}`));
    }
    if (config.redis !== 'cluster') {
      await deleteKeys(`${redisPrefix}:`, { mode: 'single', url: config.redisUrl }).catch((error: unknown) =>
        log(`deleting Redis keys: ${String(error)}`),
      );
    }
    for (const cluster of clusters.splice(0)) {
      await cluster.destroy().catch((error: unknown) => log(`removing the Redis Cluster: ${String(error)}`));
    }
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (cleaning) return; // a second signal (pnpm and tsx relay Ctrl-C too): already stopping
    log(`${signal}: stopping everything this run started`);
    void cleanUp().finally(() => process.exit(130));
  });
}

async function build(): Promise<boolean> {
  log('building (pnpm build: codegen, then tsc through turbo; cached after the first time)');
  const pnpm = process.env.npm_execpath?.includes('pnpm')
    ? { command: process.execPath, args: [process.env.npm_execpath, 'build'] }
    : { command: 'npx', args: ['-y', 'pnpm@10.34.8', 'build'] };
  const managed = start({
    name: 'build',
    ...pnpm,
    cwd: repoRoot,
    env: { ...(process.env as Record<string, string>), TURBO_TELEMETRY_DISABLED: '1' },
    logDir,
  });
  const code = await managed.exited;
  if (code !== 0)
    log(`pnpm build failed (exit ${code}); running the sources through tsx instead. See ${managed.logFile}`);
  return code === 0;
}

async function logIn(usersUrl: string, anonymousToken: string, email: string) {
  const response = await fetch(usersUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-internal-token': anonymousToken },
    body: JSON.stringify({
      query: 'mutation ($input: LogInInput!) { logIn(input: $input) { token user { id role } } }',
      variables: { input: { email, password: BENCH_PASSWORD } },
    }),
  });
  const body = (await response.json()) as {
    data?: { logIn: { token: string; user: { id: string } } };
    errors?: unknown;
  };
  if (!body.data) throw new Error(`logIn ${email} failed: ${JSON.stringify(body.errors)}`);
  return { jwt: body.data.logIn.token, userId: body.data.logIn.user.id };
}

/**
 * Waits (up to 30 s) until nothing but the bench uses the CPU: another job on this machine would
 * distort the run. Returns the CPU % of one core used by others in the last second before starting.
 */
async function quietMachine(groups: CpuGroups): Promise<number> {
  const started = Date.now();
  const deadline = started + Math.min(30_000, noiseBudget.leftMs());
  let warned = false;
  try {
    for (;;) {
      const window = new CpuWindow(groups);
      await sleep(1_000);
      const { other = 0 } = window.finish();
      if (other < 15 || Date.now() > deadline) return other;
      if (!warned)
        log(`  the machine is busy with other work (${other}% of a core); waiting up to 30 s for it to settle`);
      warned = true;
    }
  } finally {
    // The first second is a measurement, not a wait.
    noiseBudget.spend(Math.max(0, Date.now() - started - 1_000));
  }
}

/**
 * Waiting for a quiet machine and repeating disturbed runs share one time budget
 * (BENCH_NOISE_BUDGET_SECONDS), so that a machine shared with other work still finishes the bench.
 */
const noiseBudget = {
  spentMs: 0,
  exhaustedLogged: false,
  leftMs() {
    return Math.max(0, config.noiseBudgetSeconds * 1_000 - this.spentMs);
  },
  spend(ms: number) {
    this.spentMs += ms;
    if (this.leftMs() === 0 && !this.exhaustedLogged) {
      this.exhaustedLogged = true;
      log(
        `  the ${config.noiseBudgetSeconds} s allowed for waiting out other work are used up: measuring as is from now on`,
      );
    }
  },
};

/** Waits until every event of the last workload is handled, so its aftermath does not load the next run. */
async function quiesce(
  dbUrl: (service: 'orders' | 'payments' | 'meals') => string,
  target: RedisTarget,
): Promise<void> {
  const redis = connectRedis(target, {
    name: `${redisPrefix}:bench-quiesce`,
    lazyConnect: true,
    maxRetriesPerRequest: 1,
  });
  await redis.connect();
  const deadline = Date.now() + 60_000;
  try {
    for (;;) {
      let pending = 0;
      for (const service of ['orders', 'payments', 'meals'] as const) {
        const client = new pg.Client({ connectionString: dbUrl(service) });
        await client.connect();
        const { rows } = await client.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM outbox_events WHERE published_at IS NULL',
        );
        await client.end();
        pending += rows[0]!.n;
      }
      // Every event stream of the run (one per service, or its partitions), on every master of a cluster.
      for (const key of await streamKeys(redis, `${redisPrefix}:events:`)) {
        const groups = (await redis.xinfo('GROUPS', key)) as unknown[][];
        for (const group of groups) {
          const fields = Object.fromEntries(
            Array.from({ length: group.length / 2 }, (_, i) => [group[2 * i], group[2 * i + 1]]),
          );
          pending += Number(fields.pending ?? 0) + Number(fields.lag ?? 0);
        }
      }
      if (pending === 0 || Date.now() > deadline) return;
      await sleep(250);
    }
  } finally {
    redis.disconnect();
  }
}

/** The streams under `prefix` (not dead-letter streams), found with SCAN on one node or every master of a cluster. */
async function streamKeys(redis: ReturnType<typeof connectRedis>, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for (const node of redis instanceof Cluster ? redis.nodes('master') : [redis]) {
    let cursor = '0';
    do {
      const [next, found] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500, 'TYPE', 'stream');
      cursor = next;
      keys.push(...found.filter((key) => !key.endsWith(':dead')));
    } while (cursor !== '0');
  }
  return keys;
}

/** A Redis the bench measures on: the machine's one node (REDIS_URL), or a Redis Cluster it starts itself. */
interface RedisUnderTest {
  mode: Exclude<RedisMode, 'both'>;
  target: RedisTarget;
  /** What it is, for the report (no credentials). */
  description: string;
}

async function redisPersistence(target: RedisTarget): Promise<string> {
  const redis = connectRedis(target, { name: `${redisPrefix}:bench-info`, lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const node = redis instanceof Cluster ? redis.nodes('master')[0]! : redis;
    const [, appendonly] = (await node.config('GET', 'appendonly')) as string[];
    const [, fsync] = (await node.config('GET', 'appendfsync')) as string[];
    const version = /redis_version:(\S+)/.exec(await node.info('server'))?.[1] ?? '?';
    return `redis-server ${version}, appendonly ${appendonly}${appendonly === 'yes' ? `, appendfsync ${fsync}` : ''}`;
  } catch (error) {
    return `persistence unknown (${error instanceof Error ? error.message : String(error)})`;
  } finally {
    redis.disconnect();
  }
}

/** The cluster this run started, shared by its passes (each pass deletes its keys). */
let clusterUnderTest: Promise<RedisUnderTest> | undefined;

async function redisUnderTest(mode: RedisUnderTest['mode']): Promise<RedisUnderTest> {
  if (mode === 'cluster') return (clusterUnderTest ??= startClusterUnderTest());
  const target: RedisTarget = { mode: 'single', url: config.redisUrl };
  return { mode, target, description: `one node, ${describeRedisTarget(target)}: ${await redisPersistence(target)}` };
}

async function startClusterUnderTest(): Promise<RedisUnderTest> {
  log("starting a Redis Cluster of our own (3 masters, 3 replicas, from the machine's redis-server)");
  // Persistence as the one node it is compared with has it (the machine's: no AOF), so only the cluster differs.
  const single = await redisPersistence({ mode: 'single', url: config.redisUrl });
  const cluster = await RedisClusterProcess.start({ appendOnly: single.includes('appendonly yes') });
  clusters.push(cluster);
  return {
    mode: 'cluster',
    target: cluster.target,
    description:
      `a Redis Cluster the bench started (3 masters, 3 replicas on 127.0.0.1, ports ${cluster.ports.join(', ')}; ` +
      `REDIS_CLUSTER_NODES to every process): ${await redisPersistence(cluster.target)}`,
  };
}

function versions(): Record<string, string> {
  const git = (args: string[]) => execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).trim();
  let ours = JSON.parse(readFileSync(`${repoRoot}gateway/package.json`, 'utf8')).version as string;
  try {
    const dirty = git(['status', '--porcelain', '--', 'gateway', 'packages', 'subgraphs', 'prisma']) !== '';
    ours += ` (git ${git(['rev-parse', '--short', 'HEAD'])}${dirty ? ' + uncommitted changes' : ''})`;
  } catch {
    // not a git checkout
  }
  return {
    node: process.version,
    '@food/gateway': ours,
    '@graphql-hive/gateway': peerVersion('@graphql-hive/gateway'),
    '@graphql-hive/router-runtime': peerVersion('@graphql-hive/router-runtime'),
    '@apollo/gateway (stock)': peerVersion('@apollo/gateway'),
    '@apollo/server (stock)': peerVersion('@apollo/server'),
    autocannon: peerVersion('autocannon'),
  };
}

/** Logs of the last runs only (about 40 MB each): older ones are deleted. */
function pruneLogs(keep = 3): void {
  const dir = `${rawDir}logs/`;
  if (!existsSync(dir)) return;
  const runs = readdirSync(dir).sort();
  for (const old of runs.slice(0, Math.max(0, runs.length - keep)))
    rmSync(`${dir}${old}`, { recursive: true, force: true });
}

async function main(): Promise<void> {
  pruneLogs();
  mkdirSync(logDir, { recursive: true });
  if (config.volume) return volumeMain(config.volume);
  log(`run ${runId}: workloads ${config.workloads.join(',')}; targets ${config.targets.join(',')}; logs in ${logDir}`);
  const results: BenchResults = {
    date: new Date().toISOString(),
    wallSeconds: 0,
    machine: {
      loadAverageAtStart: os
        .loadavg()
        .map((n) => n.toFixed(2))
        .join(' '),
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cores: os.cpus().length,
      memoryGiB: Math.round(os.totalmem() / 1024 ** 3),
      os: `${os.type()} ${os.release()}`,
    },
    versions: {},
    settings: {},
    notes: [],
    errors: [],
    redis: {},
    runs: [],
    subscriptions: [],
  };
  await ensurePeers(log);
  const built = config.build ? await build() : false;
  if (config.build && !built) results.errors.push('pnpm build failed: the sources ran through tsx instead of dist/');

  const stale = await staleDatabases(config.postgresUrl);
  if (stale.length > 0) log(`note: databases left by an earlier, killed run: ${stale.join(', ')} (drop them by hand)`);
  log(
    `creating databases and seeding ${config.seed.users} users, ${config.seed.meals} meals, ${config.seed.orders} orders`,
  );
  databases = await createDatabases(config.postgresUrl, runId);
  await migrate(databases);
  const keys: Secrets = {
    encryptionKeyId: 'bench',
    usersKey: randomBytes(32),
    blindIndexKey: randomBytes(32),
    ordersKey: randomBytes(32),
  };
  const t0 = Date.now();
  await seed(databases, config.seed, keys);
  log(`seeded in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const secrets = { INTERNAL_TOKEN_SECRET: randomBytes(32).toString('hex') };
  // The run's access-token key pair: the users service signs with it, the bench mints subscribers'
  // tokens with it, the gateway only ever sees the public half (the users service's JWKS).
  const signingKey = generateSigningJwk('bench');
  const dbUrl = (service: string) => databases.find((db) => db.service === service)!.url;
  const shared: Shared = { built, secrets, keys, signingKey, dbUrl };
  const subscriptionState: SubscriptionState = { nextPaid: 0, priceChanges: 0, availability: new Map() };
  let customerCounts = { federated: 0, mutations: 0 };
  const allRounds = Array.from({ length: config.rounds }, (_, i) => i + 1);
  // The main pass: every workload and target, on one Redis (BENCH_REDIS=both: the one node).
  const main = await runPass(config.redis === 'cluster' ? 'cluster' : 'single', {
    scope: { workloads: config.workloads, targets: config.targets },
    rounds: allRounds,
    label: config.redis === 'cluster' ? 'cluster' : 'single',
    fatal: config.redis !== 'both',
  });
  results.runs = main.runs;
  results.subscriptions = main.subscriptions;
  customerCounts = main.customers;
  if (config.redis === 'both') {
    // Then the comparison, in pairs of passes back to back (cluster then one node, then the other way
    // round), our gateway on the compared workloads: each pair's ratio sees the same machine.
    const scope = {
      workloads: config.workloads.filter((w) => clusterComparedWorkloads.includes(w)),
      targets: config.targets.filter((t) => t === 'ours'),
    };
    results.cluster = { runs: [], subscriptions: [] };
    results.clusterBaseline = { runs: [], subscriptions: [] };
    for (const round of allRounds) {
      const order: RedisUnderTest['mode'][] = round % 2 === 1 ? ['cluster', 'single'] : ['single', 'cluster'];
      for (const mode of order) {
        const pass = await runPass(mode, { scope, rounds: [round], label: `${mode}-pair${round}`, fatal: false });
        const into = mode === 'cluster' ? results.cluster : results.clusterBaseline;
        into.runs.push(...pass.runs);
        into.subscriptions.push(...pass.subscriptions.map((run) => ({ ...run, round })));
      }
    }
  }

  /** One pass on `mode`'s Redis; unless `fatal`, a failure is reported and the run goes on. */
  async function runPass(
    mode: RedisUnderTest['mode'],
    { scope, rounds, label, fatal }: { scope: PassScope; rounds: number[]; label: string; fatal: boolean },
  ): Promise<PassResult> {
    const errors: string[] = [];
    let redis: RedisUnderTest | undefined;
    let pass: PassResult;
    try {
      redis = await redisUnderTest(mode);
      results.redis[mode] = redis.description;
      log(`on Redis: ${redis.description}; workloads ${scope.workloads.join(',')}; targets ${scope.targets.join(',')}`);
      pass = await measurePass(shared, redis, scope, rounds, label, subscriptionState, errors);
    } catch (error) {
      if (fatal) throw error;
      // BENCH_REDIS=both: the other passes' results still make a report, which names what failed here.
      const message = error instanceof Error ? error.message : String(error);
      errors.push(`the pass did not complete: ${message.slice(0, 2_000)}`);
      log(`  on ${mode === 'cluster' ? 'the cluster' : 'one node'}: FAILED: ${message.slice(0, 500)}`);
      await stopRunning();
      pass = { runs: [], subscriptions: [], customers: customerCounts };
    }
    results.errors.push(
      ...errors.map((error) =>
        config.redis === 'both' ? `${mode === 'cluster' ? 'on the cluster' : 'on one node'}: ${error}` : error,
      ),
    );
    if (redis) {
      await deleteKeys(`${redisPrefix}:`, redis.target).catch((error: unknown) =>
        log(`deleting Redis keys: ${String(error)}`),
      );
    }
    return pass;
  }

  results.wallSeconds = (Date.now() - startedAt) / 1000;
  results.versions = versions();
  const limit = fdLimit();
  results.settings = {
    BENCH_DURATION_SECONDS: config.durationSeconds,
    BENCH_WARMUP_SECONDS: config.warmupSeconds,
    BENCH_ROUNDS: config.rounds,
    BENCH_CONNECTIONS: config.queryConnections,
    BENCH_MUTATION_CONNECTIONS: config.mutationConnections,
    seed: `${config.seed.users} users / ${config.seed.meals} meals / ${config.seed.orders} orders`,
    'ours RATE_LIMIT_*': rateLimit,
    'ours runs': built ? 'gateway/dist/main.js' : 'gateway/src/main.ts via tsx',
    BENCH_REDIS: config.redis,
    'open files (soft/hard)': `${limit.soft}/${limit.hard}`,
  };
  if (config.workloads.includes('subscriptions') && config.targets.includes('ours')) {
    Object.assign(results.settings, {
      BENCH_SUB_SCENARIOS: config.scenarios.join(','),
      ...Object.fromEntries(
        config.scenarios.map((s) => [`BENCH_${s.toUpperCase()}_SUBSCRIBERS`, config.subscribers[s].join(',')]),
      ),
      BENCH_SUB_CHANGES: config.changes,
      BENCH_CHANGE_RATE: config.changeRate,
      BENCH_FEED_CHANGES: config.feedChanges,
      BENCH_MENU_CHANGES: config.menuChanges,
      BENCH_SUB_IDLE_SECONDS: config.subscriberIdleSeconds,
      BENCH_SUB_CONNECT_CONCURRENCY: config.connectConcurrency,
    });
  }
  results.notes = notes(raisedLimits, customerCounts);
  write(results);
}

/** What every pass of a run shares: the build, the secrets, the seeded databases. */
interface Shared {
  built: boolean;
  secrets: { INTERNAL_TOKEN_SECRET: string };
  /** The services' personal-data keys (seed.ts seals rows with them). */
  keys: Secrets;
  /** The private JWK the users service signs access tokens with (and the bench, for subscribers). */
  signingKey: ReturnType<typeof generateSigningJwk>;
  dbUrl: (service: string) => string;
}

/** What one pass measures: these workloads, on these targets. */
interface PassScope {
  workloads: WorkloadName[];
  targets: TargetName[];
}

interface PassResult {
  runs: HttpRun[];
  subscriptions: SubscriptionRun[];
  customers: { federated: number; mutations: number };
}

/**
 * The subgraphs, workers and gateways on one Redis: the backend's warm-up, the HTTP rounds and the
 * subscription scenarios of `scope`; the backend is stopped at the end.
 */
async function measurePass(
  { built, secrets, keys, signingKey, dbUrl }: Shared,
  redis: RedisUnderTest,
  scope: PassScope,
  rounds: number[],
  /** The pass's name in BENCH_REDIS=both's log directories (`single`, `cluster-pair1`, ...). */
  label: string,
  state: SubscriptionState,
  errors: string[],
): Promise<PassResult> {
  // BENCH_REDIS=both's passes have processes of the same names: each pass keeps its logs apart.
  const passLogDir = config.redis === 'both' ? `${logDir}/${label}` : logDir;
  mkdirSync(passLogDir, { recursive: true });
  const launch: Launch = {
    build: built,
    logDir: passLogDir,
    cpuProfileDir: config.cpuProfileDir,
    env: {
      ...secrets,
      NODE_ENV: 'production',
      ...serviceKeysEnv(keys),
      USERS_DATABASE_URL: dbUrl('users'),
      MEALS_DATABASE_URL: dbUrl('meals'),
      ORDERS_DATABASE_URL: dbUrl('orders'),
      PAYMENTS_DATABASE_URL: dbUrl('payments'),
      ...redisEnvOf(redis.target),
      REDIS_KEY_PREFIX: redisPrefix,
    },
    usersEnv: { USERS_SIGNING_KEYS: JSON.stringify([signingKey]), USERS_SIGNING_ACTIVE_KEY_ID: 'bench' },
  };
  const oursEnv = Object.fromEntries(
    ['USER', 'IP'].flatMap((scope) =>
      ['QUERIES', 'MUTATIONS', 'SUBSCRIPTIONS'].map((kind) => [`RATE_LIMIT_${scope}_${kind}`, rateLimit]),
    ),
  );
  log(`starting the subgraphs and workers (${built ? 'dist/' : 'sources via tsx'}, NODE_ENV=production)`);
  const backend: Backend = await startBackend(launch);
  const supergraphPath = `${passLogDir}/supergraph.graphql`;
  writeSupergraph(backend.urls, supergraphPath);

  // Identities: customers log in through the real logIn mutation; peers get static internal tokens.
  const internalTokens = new InternalTokens(secrets.INTERNAL_TOKEN_SECRET, 86_400);
  const anonymousInternalToken = await internalTokens.sign({ kind: 'anonymous' });
  const customers = async (from: number, count: number) => {
    const list: Identities['federated'] = [];
    let next = from;
    // A few at a time: each logIn is a deliberate scrypt (~128 MiB, a fraction of a second).
    const worker = async () => {
      while (next < from + count) {
        const { jwt, userId: id } = await logIn(backend.urls.users, anonymousInternalToken, customerEmail(next++));
        list.push({ jwt, internalToken: await internalTokens.sign({ kind: 'user', userId: id, role: 'CUSTOMER' }) });
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    return list;
  };
  // One customer per connection: concurrent identical requests (same query, same identity) are rare in
  // real traffic, and Hive would merge them (it deduplicates identical in-flight subgraph queries).
  const federatedCount = Math.min(config.queryConnections, Math.floor(config.seed.users / 2));
  const mutationCount = Math.min(config.mutationConnections, Math.floor(config.seed.users / 2));
  log(`logging in ${federatedCount + mutationCount} customers and a staff member (the real logIn mutation)`);
  const identities: Identities = {
    federated: await customers(1, federatedCount),
    mutations: await customers(1 + federatedCount, mutationCount),
    cold: httpWorkloadsOf(scope).includes('federated-cold')
      ? // Not the customers above: their entities are in our cache from the other workloads.
        await mintedCustomers(
          1 + federatedCount + mutationCount,
          Math.min(config.coldCustomers, config.seed.users - federatedCount - mutationCount),
          launch,
          internalTokens,
        )
      : [],
    anonymousInternalToken,
    mealIds: Array.from({ length: 50 }, (_, k) => mealId(availableMeal(k * 17, config.seed))),
  };
  const staff = await logIn(backend.urls.users, anonymousInternalToken, STAFF_EMAIL);

  const cpuGroups =
    (target?: RunningTarget) =>
    (clientPids: number | number[]): CpuGroups => ({
      gateway: () => (target?.process ? [target.process.pid] : []),
      users: () => [backend.processes.users.pid],
      meals: () => [backend.processes.meals.pid],
      orders: () => [backend.processes.orders.pid],
      payments: () => [backend.processes.payments.pid],
      workers: () => workers.map((worker) => backend.processes[worker].pid),
      postgres: () => pidsNamed('postgres'),
      redis: () => pidsNamed('redis-server'),
      client: () => [clientPids].flat(),
      bench: () => [process.pid],
      fixtures: () => (overhead ? [overhead.process.pid] : []),
    });
  const settings = {
    connections: config.queryConnections,
    warmupSeconds: config.warmupSeconds,
    durationSeconds: config.durationSeconds,
  };

  // HTTP workloads: one target at a time, every target once per round (A B C D, A B C D, ...).
  const httpWorkloads = httpWorkloadsOf(scope);
  const runs: HttpRun[] = [];
  const targets = scope.targets.filter((target) => httpWorkloads.some((w) => appliesTo(w, target)));
  // gateway-overhead: the fixture subgraphs, for this pass; the ceiling answers what a gateway answered.
  const overhead: OverheadBackend | undefined = httpWorkloads.some(onFixtures)
    ? await startOverheadBackend(passLogDir, `${passLogDir}/overhead-supergraph.graphql`)
    : undefined;
  const ceilingBodyFile = `${passLogDir}/overhead-response.json`;
  rmSync(ceilingBodyFile, { force: true });
  /** federated-cold: where each target's next run goes on in the rotation of customers. */
  const coldNext = new Map<TargetName, number>();

  // The subgraphs' JIT and Postgres' caches warm up before round 1, through a neutral gateway, so that
  // the first target measured does not pay for them.
  const warmName = targets.includes('apollo') ? 'apollo' : targets[0];
  if (warmName && config.backendWarmupSeconds > 0) {
    log(
      `warming up the subgraphs and Postgres: each workload through ${warmName}, ${config.backendWarmupSeconds} s, not measured`,
    );
    const warm = await startTarget(warmName, {
      launch,
      backend,
      supergraphPath,
      oursEnv,
      baseDir: config.baseDir,
      tag: 'warmup',
    });
    try {
      // Not the fixtures (they answer from memory) nor federated-cold (its customers stay unseen).
      for (const workload of httpWorkloads.filter(
        (w) => appliesTo(w, warmName) && setupOf(w, warmName) !== 'cold' && setupOf(w, warmName) !== 'fixtures',
      )) {
        const spec = loadSpec(workload, warm, identities, {
          connections: workload === 'mutations' ? config.mutationConnections : config.queryConnections,
          warmupSeconds: 0,
          durationSeconds: config.backendWarmupSeconds,
        });
        await measure(spec, warm, cpuGroups(warm), backend.urls, logDir);
        if (workload === 'mutations') await quiesce(dbUrl, redis.target);
      }
    } finally {
      await warm.stop();
    }
  }
  for (const round of httpWorkloads.length > 0 ? rounds : []) {
    for (const [name, setup] of targets.flatMap((name) =>
      setups
        .filter((setup) => httpWorkloads.some((w) => appliesTo(w, name) && setupOf(w, name) === setup))
        .map((setup) => [name, setup] as const),
    )) {
      log(`round ${round}/${config.rounds}: starting ${name}${setup === 'main' ? '' : ` (${setup})`}`);
      let target: RunningTarget;
      try {
        target = await startTarget(name, {
          launch,
          backend,
          supergraphPath: setup === 'fixtures' ? overhead!.supergraphPath : supergraphPath,
          fixtures: setup === 'fixtures',
          peerCache: setup === 'cached',
          ceilingBodyFile,
          // Cold: no entity cache shared by every caller, so that no cache may answer (see the notes).
          oursEnv: setup === 'cold' ? { ...oursEnv, ENTITY_CACHE_TYPES: '' } : oursEnv,
          baseDir: config.baseDir,
          tag: `r${round}${setup === 'main' ? '' : `-${setup}`}`,
        });
      } catch (error) {
        // Its workloads of this round are missing from the report, which says why.
        const message = error instanceof Error ? error.message : String(error);
        errors.push(`round ${round}: ${name} (${setup}) did not start: ${message.slice(0, 2_000)}`);
        log(`  ${name} DID NOT START: ${message.slice(0, 500)}`);
        continue;
      }
      try {
        for (const workload of httpWorkloads.filter((w) => appliesTo(w, name) && setupOf(w, name) === setup)) {
          const spec = loadSpec(workload, target, identities, {
            ...settings,
            connections: workload === 'mutations' ? config.mutationConnections : config.queryConnections,
          });
          const cold = workload === 'federated-cold';
          if (cold) spec.firstIdentity = coldNext.get(name) ?? 0;
          const run: HttpRun = {
            workload,
            target: name,
            round,
            cpu: {},
            gatewayPeakRss: 0,
            subgraphRequests: {},
            problems: [],
          };
          runs.push(run);
          const wrong = await verify(spec);
          if (wrong) {
            run.problems.push(`verification request failed: ${wrong}`);
            log(`  ${workload} on ${name}: VERIFICATION FAILED: ${wrong.slice(0, 300)}`);
            continue;
          }
          // The verification took one customer: the load goes on from the next.
          if (cold) spec.firstIdentity! += 1;
          if (workload === 'gateway-overhead' && name !== 'ceiling' && !existsSync(ceilingBodyFile)) {
            writeFileSync(ceilingBodyFile, await answerOf(spec));
          }
          // A run disturbed by other work on the machine is repeated once (the report keeps the count).
          for (let attempt = 1; ; attempt++) {
            const attemptStarted = Date.now();
            run.otherCpuBefore = await quietMachine(cpuGroups(target)(0));
            const measured = await measure(
              spec,
              target,
              cpuGroups(target),
              setup === 'fixtures' ? overhead!.urls : backend.urls,
              logDir,
            );
            run.result = measured.result;
            run.cpu = measured.cpu;
            run.gatewayPeakRss = measured.gatewayPeakRss;
            run.subgraphRequests = measured.subgraphRequests;
            run.entityCache = measured.entityCache;
            run.attempts = attempt;
            if (cold) coldNext.set(name, (spec.firstIdentity = spec.firstIdentity! + measured.result.identitiesUsed));
            run.problems = problemsOf(measured.result);
            const r = measured.result;
            log(
              `  ${workload.padEnd(12)} ${name.padEnd(6)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${r.latencyMs.p50} ms  ` +
                `p99 ${r.latencyMs.p99} ms  gateway CPU ${measured.cpu.gateway ?? '-'}%  other CPU ${measured.cpu.other}%` +
                (run.problems.length ? `  ERRORS: ${run.problems.join('; ')}` : ''),
            );
            if (workload === 'mutations') await quiesce(dbUrl, redis.target);
            if (attempt > 1) noiseBudget.spend(Date.now() - attemptStarted);
            const noisy = (measured.cpu.other ?? 0) > NOISY_CPU;
            if (!noisy || attempt > config.noisyRetries || noiseBudget.leftMs() === 0) break;
            log(`  other processes used ${measured.cpu.other}% of a core during that run: repeating it`);
          }
        }
      } finally {
        await target.stop();
      }
    }
  }

  let subscriptionRuns: SubscriptionRun[] = [];
  if (scope.workloads.includes('subscriptions') && scope.targets.includes('ours')) {
    subscriptionRuns = await subscriptions(backend, launch, oursEnv, staff.jwt, cpuGroups, state, errors);
  }
  // The next pass starts its own backend on its own Redis.
  await Promise.all(
    [...Object.values(backend.processes), ...(overhead ? [overhead.process] : [])].map((managed) => managed.stop()),
  );
  return {
    runs,
    subscriptions: subscriptionRuns,
    customers: { federated: identities.federated.length, mutations: identities.mutations.length },
  };
}

const httpWorkloadsOf = (scope: { workloads: WorkloadName[] }) =>
  scope.workloads.filter((w): w is HttpWorkload => w !== 'subscriptions');

/**
 * How a target is started for a workload: `main` on our subgraphs, as shipped; `cached` the same, a
 * peer with its response cache on (federated: cache against cache); `cold` ours without an entity
 * cache shared by every caller; `fixtures` on the fixture subgraphs' supergraph. A target is started
 * once per round for each setup its workloads need.
 */
const setups = ['main', 'cached', 'cold', 'fixtures'] as const;
type Setup = (typeof setups)[number];
const setupOf = (workload: HttpWorkload, target: TargetName): Setup =>
  onFixtures(workload)
    ? 'fixtures'
    : workload === 'federated-cold'
      ? 'cold'
      : workload === 'federated' && (peerNames as readonly TargetName[]).includes(target)
        ? 'cached'
        : 'main';

/** Signs access tokens with the run's key, exactly as logIn issues them (for a day). */
const runTokenSigner = (launch: Launch) =>
  new UserTokenSigner({
    keys: signingKeysEnv.parse(launch.usersEnv.USERS_SIGNING_KEYS),
    activeKeyId: launch.usersEnv.USERS_SIGNING_ACTIVE_KEY_ID!,
    issuer: 'food-users',
    audience: 'food-supergraph',
    ttlSeconds: 86_400,
  });

/** `count` customers from `first`, with access tokens minted as logIn issues them (thousands of scrypt logins would not fit). */
async function mintedCustomers(
  first: number,
  count: number,
  launch: Launch,
  internalTokens: InternalTokens,
): Promise<Identities['cold']> {
  const signer = runTokenSigner(launch);
  const list: Identities['cold'] = [];
  for (let k = first; k < first + count; k++) {
    const id = userId(k);
    const { token } = await signer.issue({ userId: id, role: 'CUSTOMER', sessionId: randomUUID() });
    list.push({ jwt: token, internalToken: await internalTokens.sign({ kind: 'user', userId: id, role: 'CUSTOMER' }) });
  }
  return list;
}

/** A target's answer to the workload's query: the bytes the ceiling then answers to every request. */
async function answerOf(spec: LoadSpec): Promise<string> {
  const response = await fetch(spec.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...spec.identities[0] },
    body: spec.body ?? JSON.stringify({ query: OVERHEAD_QUERY }),
    signal: AbortSignal.timeout(10_000),
  });
  return response.text();
}

/**
 * What the subscription scenarios have changed so far, kept across the passes of BENCH_REDIS=both so
 * that the cluster's pass changes other orders (PAID ones) and keeps raising prices.
 */
interface SubscriptionState {
  /** PAID orders already taken, from the start of paidOrders(). */
  nextPaid: number;
  priceChanges: number;
  /** The followed meals' availability as the menu scenario has left it (seeded available). */
  availability: Map<string, boolean>;
}

/** Meals the menu scenario's followers subscribe to by id (`mealIds`). */
const FOLLOWED_MEALS = 3;
/**
 * Open files our gateway needs besides one socket per subscriber: Node's own, Redis, the log, and its
 * connections to the subgraphs while current states resolve, up to one per subgraph a subscribe in
 * flight calls (HTTP/1.1). The report's "gateway open files" is the most it had.
 */
const gatewayFilesBesidesSubscribers = () => 128 + 4 * config.connectConcurrency;

interface PlannedRun {
  scenario: ScenarioName;
  asked: number;
  /** What the open-files limit allows of `asked`. */
  n: number;
}

async function subscriptions(
  backend: Backend,
  launch: Launch,
  oursEnv: Record<string, string>,
  staffJwt: string,
  cpuGroups: (target?: RunningTarget) => (clientPids: number | number[]) => CpuGroups,
  state: SubscriptionState,
  errors: string[],
): Promise<SubscriptionRun[]> {
  const runs: SubscriptionRun[] = [];
  // One gateway process holds every subscriber of a run, a socket per connection: its hard limit of
  // open files (which no unprivileged process can raise) bounds a run's size.
  const limit = fdLimit();
  const capacity = limit.hard - gatewayFilesBesidesSubscribers();
  const perConnection = (scenario: ScenarioName) => (scenario === 'menu' ? config.menuPerConnection : 1);
  const plan: PlannedRun[] = config.scenarios.flatMap((scenario) =>
    config.subscribers[scenario].map((asked) => ({
      scenario,
      asked,
      n: Math.min(asked, capacity * perConnection(scenario)),
    })),
  );
  if (plan.length === 0) return runs;
  for (const run of plan.filter((r) => r.n < r.asked)) {
    const message =
      `subscriptions: ${run.scenario} with ${run.asked} subscribers needs ` +
      `${Math.ceil(run.asked / perConnection(run.scenario)) + gatewayFilesBesidesSubscribers()} ` +
      `open files in the gateway, but the hard limit here is ${limit.hard}: it ran with ${run.n} subscribers ` +
      `instead. Raise the hard limit (e.g. docker run --ulimit nofile=65536:65536, systemd LimitNOFILE=65536, ` +
      `or as root ulimit -Hn 65536) to measure ${run.asked}.`;
    errors.push(message);
    log(message);
  }
  // PAID orders: the order scenario's subscribers follow one each; the feed's changes move others.
  const paid = paidOrders(config.seed);
  const needed = plan.reduce(
    (sum, run) => sum + (run.scenario === 'order' ? run.n : run.scenario === 'feed' ? config.feedChanges : 0),
    0,
  );
  if (paid.length - state.nextPaid < needed) {
    errors.push(`subscriptions: ${needed} PAID orders needed, the seed has ${paid.length} (raise BENCH_SEED_ORDERS)`);
    return runs;
  }
  log(
    `subscriptions: starting our gateway for ${plan.map((run) => `${run.scenario} ${run.n}`).join(', ')} (in this order)`,
  );
  const gateway = await startTarget('ours', {
    launch,
    backend,
    supergraphPath: '',
    oursEnv,
    tag: 'subscriptions',
    openFiles: Math.min(
      limit.hard,
      Math.max(...plan.map((run) => Math.ceil(run.n / perConnection(run.scenario)))) + gatewayFilesBesidesSubscribers(),
    ),
    gcOnSignal: true,
  });
  const userTokens = runTokenSigner(launch);
  const followed = menuMeals(FOLLOWED_MEALS, config.seed).map(mealId);
  // The followed meals as the menu scenario has changed them (seeded available; prices only go up).
  for (const id of followed) if (!state.availability.has(id)) state.availability.set(id, true);
  try {
    for (const { scenario, asked, n } of plan) {
      const common = {
        scenario,
        asked: n < asked ? asked : undefined,
        gatewayUrl: gateway.url,
        gateway: gateway.process!,
        staffJwt,
        idleSeconds: config.subscriberIdleSeconds,
        connectConcurrency: config.connectConcurrency,
        socketsPerClient: Math.min(config.socketsPerClient, limit.hard - 256),
        perConnection: perConnection(scenario),
        cpuGroups: cpuGroups(gateway),
        logDir,
        log,
      };
      let setup: ScenarioSetup;
      if (scenario === 'order') {
        // Each subscriber follows a PAID order of its own, as that order's customer (a JWT as logIn
        // issues it: thousands of scrypt logins would take longer than the whole bench).
        const mine = paid.slice(state.nextPaid, (state.nextPaid += n));
        const subscribers: Subscriber[] = [];
        for (const i of mine) {
          const { token } = await userTokens.issue({
            userId: userId(customerOf(i, config.seed)),
            role: 'CUSTOMER',
            sessionId: randomUUID(),
          });
          subscribers.push({ token, variables: { id: orderId(i) }, firstResult: true });
        }
        // A sample of the subscribers' orders, spread over all of them, changes once each.
        const step = Math.max(1, Math.ceil(n / config.changes));
        setup = {
          ...common,
          subscribedTo: "orderStatusChanged(orderId), each its own PAID order as that order's customer",
          query: TRACK,
          receipt: 'order',
          subscribers,
          changes: mine
            .filter((_, k) => k % step === 0)
            .map((i) => ({
              query: CHANGE_ORDER,
              variables: { input: { orderId: orderId(i), status: 'ACCEPTED' } },
              recipients: 1,
            })),
          changeRate: config.changeRate,
        };
      } else if (scenario === 'feed') {
        // Every subscriber is staff on the feed of every order; orders no subscriber follows change.
        const changed = paid.slice(state.nextPaid, (state.nextPaid += config.feedChanges));
        setup = {
          ...common,
          subscribedTo: 'orderUpdates (every order), as staff',
          query: FEED,
          receipt: 'order',
          subscribers: Array.from({ length: n }, () => ({ token: staffJwt, variables: {}, firstResult: false })),
          changes: changed.map((i) => ({
            query: CHANGE_ORDER,
            variables: { input: { orderId: orderId(i), status: 'ACCEPTED' } },
            recipients: n,
          })),
          changeRate: 1,
        };
      } else {
        // Anonymous menus: every other subscriber follows the same few meals by id (their current
        // state first), the rest every meal. Each change is of a followed meal: it reaches everyone.
        const subscribers: Subscriber[] = Array.from({ length: n }, (_, k) =>
          k % 2 === 0 ? { variables: { mealIds: followed }, firstResult: true } : { variables: {}, firstResult: false },
        );
        const followers = Math.ceil(n / 2);
        const changes = Array.from({ length: config.menuChanges }, (_, c) => {
          const id = followed[c % followed.length]!;
          // Each meal's price first, then its availability, in turn.
          let input: Record<string, unknown>;
          if (Math.floor(c / followed.length) % 2 === 0) {
            input = { priceAmount: 2_000 + ++state.priceChanges }; // above every seeded price: always a change
          } else {
            const available = !state.availability.get(id);
            state.availability.set(id, available);
            input = { available };
          }
          return { query: CHANGE_MEAL, variables: { id, input }, recipients: n };
        });
        setup = {
          ...common,
          subscribedTo:
            `mealAvailabilityChanged, anonymous: ${followers} with mealIds of ${followed.length} meals, ` +
            `${n - followers} without (every meal)` +
            (config.menuPerConnection > 1
              ? `, ${config.menuPerConnection} subscriptions per connection (${Math.ceil(n / config.menuPerConnection)} connections)`
              : ''),
          query: MENU,
          receipt: 'meal',
          subscribers,
          changes,
          changeRate: 1,
        };
      }
      runs.push(await runScenario(setup));
      await sleep(1_000);
    }
  } catch (error) {
    errors.push(`subscriptions: ${error instanceof Error ? error.message : String(error)}`);
    log(`subscriptions FAILED: ${String(error)}`);
  } finally {
    await gateway.stop();
  }
  return runs;
}

function notes(raised: typeof raisedLimits, customers: { federated: number; mutations: number }): string[] {
  return [
    "Every deployable is its own process, as deployed: four subgraphs (Prisma on this machine's Postgres, one fresh " +
      'database each, created, migrated and dropped by the bench), the orders, payments, meals and users workers, and one gateway ' +
      'at a time. Our gateway runs its production configuration (NODE_ENV=production, real Redis for rate limits, ' +
      'APQ, the entity cache and subscriptions, LOG_LEVEL default info: one log line per request, to a file).',
    `Our gateway's RATE_LIMIT_{USER,IP}_{QUERIES,MUTATIONS,SUBSCRIPTIONS} are ${rateLimit} (the largest its config ` +
      'accepts; the limiter still runs, in Redis, on every request) so that it never refuses the benchmark.',
    'Peers: Hive Gateway (`hive-gateway supergraph`, one process: --fork 1, gateway.config.ts propagating the ' +
      'internal token header) and stock @apollo/gateway + @apollo/server standalone (defaults; a RemoteGraphQLDataSource ' +
      'whose willSendRequest passes the token on), both on gateway/supergraph.graphql with only the subgraph URLs ' +
      "changed to this run's ports. Our subgraphs refuse calls without a signed internal token: for the peers the " +
      'load client sends a static, long-lived (24 h) internal token of its identity, signed with InternalTokens and ' +
      "the run's INTERNAL_TOKEN_SECRET. Our gateway instead gets each customer's real JWT (from the logIn mutation) " +
      'as a frontend sends it, verifies it and signs the internal tokens itself: work the peers do not do.',
    'Hive Gateway deduplicates identical in-flight subgraph queries by default (@graphql-tools/executor-http, ' +
      '`deduplicateInflightRequests`: same URL, body and headers). The anonymous menu query is the same for every ' +
      'client, so under concurrency Hive sends the meals subgraph only a fraction of the requests it answers (see ' +
      '"subgraph calls per response"): that is how it can pass the subgraph\'s own "ceiling". The federated and mutation ' +
      'workloads use one customer per connection, so their requests rarely coincide.',
    `Workloads: one-subgraph = \`meals(first: 20)\` (anonymous); federated = \`me { orders(first: 10) { ... customer { name } ` +
      `items { meal { name } } payment { status } } }\` (${customers.federated} customers in turn, all four subgraphs); ` +
      'mutations = placeOrder then payForOrder (tok_sandbox_success), each with a new idempotency key, as ' +
      `${customers.mutations} other customers. Each run is a fixed concurrency (${config.queryConnections} connections ` +
      `for queries, ${config.mutationConnections} for the mutation mix) for ${config.durationSeconds} s after ` +
      `${config.warmupSeconds} s of the same load, by autocannon in its own process.`,
    'Peers, continued: "Hive Gateway, Rust planner" is the same Hive Gateway with HIVE_ROUTER_RUNTIME=true, its ' +
      "documented switch to @graphql-hive/router-runtime (Hive Router's Rust query planner through a native addon, " +
      'and its executor): its fastest documented configuration. Peers run without caches except on federated.',
    'federated, cache against cache: the peers run it with their documented response caches on, per identity ' +
      "(the internal token names the caller) for 60 s, our entity cache's TTL: Hive Gateway (both runtimes) with " +
      '`responseCaching: { session: x-internal-token, ttl: 60 s }` in gateway.config.ts (its in-memory cache); stock ' +
      'Apollo with @apollo/server-plugin-response-cache (sessionId: the same header; in-memory) and a plugin that ' +
      "gives each answer a private 60 s policy (our subgraphs' @cacheControl names scopes, no maxAge, so Apollo " +
      'would otherwise store nothing). Ours runs as shipped: its response cache (whole answers in the gateway ' +
      "process's memory, per caller for this query, 60 s, dropped by events and by other replicas' changes over " +
      'Redis) in front of its entity cache in Redis (Meal shared, Order and User per caller, 60 s). On a hit ours ' +
      'still authenticates, spends the rate budget in Redis and checks read-your-writes there, and logs the request.',
    `federated-cold: the federated query, each request from the next of ${config.coldCustomers.toLocaleString('en')} ` +
      "customers (access tokens minted with the run's signing key exactly as logIn issues them; the peers get each " +
      "one's internal token), and every run of a target goes on in that rotation where its last run stopped, so no " +
      "customer repeats within our cache's TTL (60 s) unless the rotation wraps. Ours runs it in a process of its own " +
      'with the entity cache shared by every caller (the public Meal) off, ENTITY_CACHE_TYPES empty, and its ' +
      'per-caller caches (entities, whole responses) as shipped: no cache may answer for it, and its own counters ' +
      '("caches" below) show it did not.',
    'gateway-overhead: the four-subgraph shape of the public gateway benchmarks (accounts, inventory, products, ' +
      'reviews; bench/src/overhead/), written here with the same schema (keys, @requires, @provides) and data of the ' +
      `same shape, answering from memory in a process of their own, each call after a fixed ${OVERHEAD_DELAY_MS} ms; ` +
      "the benchmarks' nested query (users and topProducts, entities four levels deep), anonymous, the same bytes from " +
      'every target (about 64 KiB). Every target reads the same composed supergraph; ours runs its production ' +
      'configuration on it (rate limits in Redis, APQ, query bounds; the fixtures declare no cacheable types). The ' +
      "ceiling is a plain Node HTTP server answering those bytes to every request: what Node's HTTP alone costs here.",
    `Order: before round 1 each workload runs ${config.backendWarmupSeconds} s through stock Apollo, not measured, so ` +
      "that the subgraphs' JIT and Postgres' caches are warm for whichever target comes first; then each round " +
      'starts every target in turn (a fresh gateway process per round), and each run has its own warm-up.',
    'Errors: a verification request per workload and target before the load (a wrong answer skips the run), and ' +
      'during the load every response is checked: non-2xx, connection errors, timeouts, and 2xx bodies without ' +
      '`data` or with GraphQL `errors`. A run with any of them is not a result and is left out of every median.',
    'CPU: utime+stime from /proc/<pid>/stat of each process over the measured window; "other" is the whole ' +
      "machine's busy time (/proc/stat) minus every process of the bench (postgres counts every postgres process " +
      'on the machine): anything above a few % there means something else was running and the numbers are noisy.',
    'Between the mutation mix and the next run the bench waits until every outbox is published and every event ' +
      'consumed, so workers do not spill work into the next measurement.',
    ...subscriptionNotes(),
    raised.length > 0
      ? `Open files: the soft limit was raised for ${raised.length} child process(es) (${raised
          .map((r) => `${r.from} -> ${r.to}`)
          .join(', ')}).`
      : `Open files: the soft limit (${fdLimit().soft}) was already enough for every process; nothing was raised.`,
  ];
}

/** What each subscription scenario did, and what the gateway had switched on, for the report. */
function subscriptionNotes(): string[] {
  if (!config.workloads.includes('subscriptions') || !config.targets.includes('ours')) return [];
  const sizes = (scenario: ScenarioName) =>
    config.subscribers[scenario].map((n) => n.toLocaleString('en')).join(' and ');
  const scenarios = config.scenarios;
  const notes = [
    'Subscriptions: our gateway only (peers have no Redis event source). One gateway process runs every scenario ' +
      `in turn (${scenarios.map((s) => `${s} ${sizes(s)}`).join(', ')}), so each later run is measured in a warm ` +
      'process; the first run carries one-time costs such as compiled code. Subscribers are WebSocket connections, ' +
      "one each (as browser tabs), speaking graphql-ws's protocol (graphql-transport-ws) from a lean client on raw " +
      "`ws` sockets (graphql-ws's createClient per socket takes 1.5x the CPU per message and 7 KiB more memory per " +
      'connection, measured at 10,000 on the bench machine: CPU the gateway shares, time inside every latency), ' +
      `in client processes of their own, fresh for each run, at most ${config.socketsPerClient.toLocaleString('en')} ` +
      `connections each, ${config.connectConcurrency} subscribing at once. "Connected" means subscribed: the first ` +
      'result where the subscription starts with a current state (order; menu with mealIds), else the ack with the ' +
      'subscribe sent; the bench then waits until the gateway counts every subscription ("registered", its ' +
      'gateway_active_subscriptions) before the idle time and the memory reading.',
  ];
  if (scenarios.includes('order'))
    notes.push(
      "Order scenario: each subscriber follows its own PAID order (orderStatusChanged(orderId)) as that order's " +
        "customer, with an access token signed with the run's signing key exactly as logIn issues it (thousands of scrypt " +
        `logins would take longer than the bench); once all are connected and idle, staff move ${config.changes} ` +
        'of those orders (spread over all subscribers; all of them when there are fewer) to ACCEPTED, at ' +
        `${config.changeRate} changes/s, each to its one subscriber. Every subscriber also got its first result ` +
        '(the current state), which "delivered" does not count. The gateway resolves each change as its subscriber ' +
        '(audience CALLER: one topic per subscriber) through all four subgraphs.',
    );
  if (scenarios.includes('feed'))
    notes.push(
      'Feed scenario: every subscriber is staff (one staff JWT) on orderUpdates, the feed of every order; staff ' +
        `then move ${config.feedChanges} PAID orders no subscriber follows to ACCEPTED, one per second, each ` +
        'broadcast to every subscriber (audience ROLE: one topic for all of them, one resolution per change).',
    );
  if (scenarios.includes('menu'))
    notes.push(
      'Menu scenario: anonymous subscribers (no token) on mealAvailabilityChanged; every other one passes mealIds ' +
        `of the same ${FOLLOWED_MEALS} available meals (and first gets their current state, one result each), the ` +
        "rest pass none (every meal's changes, no current state). Staff then make " +
        `${config.menuChanges} changes with updateMeal, one per second, each to one of those ${FOLLOWED_MEALS} meals ` +
        "in turn: first each one's price, then its availability (toggled), so every change goes to every " +
        'subscriber (audience PUBLIC: two topics, by variables, which read the same selection, so each change is ' +
        'resolved once for both, anonymously, and a connection gets its two messages in one write). ' +
        'The event (meal.availability_changed) comes from the meals outbox through the meals worker.',
    );
  notes.push(
    "Latency: from the change mutation's response (as staff, through the gateway) to each subscriber's receipt of " +
      'that change (both clocks of this machine); it includes the outbox relay (a worker), Redis and the gateway ' +
      "resolving the selection. A receipt is matched to its change by the entity and what changed: an order's id " +
      "and status, a meal's id, version, availability and price; a subscriber's repeat of a change is not counted " +
      'again, and what has not arrived 30 s after the last change is not delivered. "Worst change p99": each ' +
      "broadcast change's own p99 over its subscribers, the highest of them.",
    'Memory per subscriber: before connecting and once all are connected and idle ' +
      `(${config.subscriberIdleSeconds} s), the gateway runs a full garbage collection (SIGUSR2 with --expose-gc, bench ` +
      'only) and the lowest of six readings of its /metrics (process_resident_memory_bytes, ' +
      'nodejs_heap_size_used_bytes) over 2.5 s is taken; (after - before) / connected. A run after a larger one ' +
      'starts with memory the process freed but kept (RSS rarely shrinks), which it reuses: its RSS per ' +
      'subscriber reads low, even below zero; its heap per subscriber is the steadier figure.',
    'What the gateway had switched on for subscriptions: its production defaults (graphql-ws on /graphql, ' +
      'GATEWAY_MAX_SUBSCRIPTIONS_PER_CONNECTION 20: each bench connection holds one; a ping every 12 s), and on ' +
      `every subscribe the rate limiter in Redis (RATE_LIMIT_*=${rateLimit}: every subscriber comes from 127.0.0.1, ` +
      'so the address budget counts all of them), the query bounds and APQ; events from Redis streams, one tail ' +
      'per stream. The entity cache (Meal shared, Order and User per caller) is on for HTTP, but subscription ' +
      "results do not pass through it: every current state and every topic's resolution of a change is a fetch " +
      'to the subgraphs (the menu: one meals fetch per meal per subscriber with mealIds, then one per topic per ' +
      'change). GATEWAY_MAX_HTTP_SUBSCRIPTIONS_PER_ADDRESS bounds SSE and multipart only: not in play here.',
  );
  return notes;
}

/** BENCH_VOLUME=1: the volume run alone (volume.ts), its report in results/volume.md. */
async function volumeMain(volume: VolumeConfig): Promise<void> {
  log(`run ${runId}: volume, sizes ${volume.sizes.join(',')}; logs in ${logDir}`);
  await ensurePeers(log); // autocannon, the load generator
  const built = config.build ? await build() : false;
  const save = (results: VolumeResults) => {
    results.machine = {
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cores: os.cpus().length,
      memoryGiB: Math.round(os.totalmem() / 1024 ** 3),
    };
    if (config.build && !built && !results.errors.some((e) => e.startsWith('pnpm build')))
      results.errors.push('pnpm build failed: the sources ran through tsx instead of dist/');
    mkdirSync(rawDir, { recursive: true });
    const raw = `${rawDir}volume-${stamp}.json`;
    writeFileSync(raw, `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(`${resultsDir}volume.md`, volumeMarkdown(results));
    log(`report${results.partial ? ' (so far)' : ''}: bench/results/volume.md; raw: ${raw.replace(repoRoot, '')}`);
  };
  const results = await runVolume({
    config,
    volume,
    built,
    log,
    logDir,
    runId,
    redisPrefix,
    rateLimit,
    track: (list) => (databases = list),
    onCleanUp: (undo) => undos.push(undo),
    checkpoint: save,
  });
  save(results);
  console.log(`\n${volumeMarkdown(results)}`);
}

function write(results: BenchResults): void {
  mkdirSync(rawDir, { recursive: true });
  const raw = `${rawDir}${stamp}.json`;
  writeFileSync(raw, `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(`${resultsDir}latest.md`, markdown(results));
  writeFileSync(`${resultsDir}latest.svg`, svgChart(results));
  log(`report: bench/results/latest.md, bench/results/latest.svg; raw: ${raw.replace(repoRoot, '')}`);
  console.log(`\n${markdown(results)}`);
}

main()
  .catch(async (error: unknown) => {
    log(`FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exitCode = 1;
  })
  .finally(async () => {
    log('cleaning up: stopping processes, dropping databases, deleting Redis keys');
    await cleanUp();
    log(`done in ${elapsed()}`);
    // Nothing of ours is left; do not wait for idle sockets of libraries.
    setTimeout(() => process.exit(), 100).unref();
  });
