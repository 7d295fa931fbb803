import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { Redis } from 'ioredis';
import pg from 'pg';
import { InternalTokens, UserTokens } from '@food/platform';
import { deleteKeys } from '@food/platform/testing';
import { loadBenchConfig, repoRoot, resultsDir } from './config.js';
import { ensurePeers, peerVersion } from './peers.js';
import { CpuWindow, fdLimit, pidsNamed, raisedLimits, sleep, start, stopAll, type CpuGroups } from './procs.js';
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
  migrate,
  orderId,
  paidOrders,
  seed,
  STAFF_EMAIL,
  staleDatabases,
  userId,
  type BenchDatabase,
} from './seed.js';
import { runSubscriptions, type SubscriptionRun } from './subscriptions.js';
import {
  startBackend,
  startTarget,
  workers,
  writeSupergraph,
  type Backend,
  type Launch,
  type RunningTarget,
} from './targets.js';
import { appliesTo, loadSpec, measure, verify, type HttpWorkload, type Identities } from './workloads.js';

const config = loadBenchConfig();
const startedAt = Date.now();
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const runId = randomBytes(4).toString('hex');
const rawDir = `${resultsDir}raw/`;
const logDir = `${rawDir}logs/${stamp}`;
const redisPrefix = `bench-${runId}`;
const rateLimit = process.env.BENCH_RATE_LIMIT ?? '1000000';

const elapsed = () => {
  const s = Math.round((Date.now() - startedAt) / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
};
const log = (line: string) => console.log(`[bench ${elapsed()}] ${line}`);

let databases: BenchDatabase[] = [];
let cleaning: Promise<void> | undefined;
/** Stops every process this run started, drops its databases and deletes its Redis keys; once. */
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    await stopAll().catch((error: unknown) => log(`stopping processes: ${String(error)}`));
    if (databases.length > 0) {
      await dropDatabases(
        config.postgresUrl,
        databases.map((db) => db.name),
      ).catch((error: unknown) => log(`dropping databases: ${String(error)}`));
    }
    await deleteKeys(`${redisPrefix}:`, config.redisUrl).catch((error: unknown) =>
      log(`deleting Redis keys: ${String(error)}`),
    );
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
async function quiesce(dbUrl: (service: 'orders' | 'payments' | 'meals') => string): Promise<void> {
  const redis = new Redis(config.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
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
        const key = `${redisPrefix}:events:${service}`;
        if ((await redis.exists(key)) === 0) continue;
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
    runs: [],
    subscriptions: [],
  };
  const httpWorkloads = config.workloads.filter((w): w is HttpWorkload => w !== 'subscriptions');
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
  const encryptionKey = randomBytes(32);
  const t0 = Date.now();
  await seed(databases, config.seed, { encryptionKeyId: 'bench', encryptionKey });
  log(`seeded in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const secrets = {
    INTERNAL_TOKEN_SECRET: randomBytes(32).toString('hex'),
    JWT_SECRET: randomBytes(32).toString('hex'),
  };
  const dbUrl = (service: string) => databases.find((db) => db.service === service)!.url;
  const launch: Launch = {
    build: built,
    logDir,
    cpuProfileDir: config.cpuProfileDir,
    env: {
      ...secrets,
      NODE_ENV: 'production',
      JWT_TTL_SECONDS: '86400',
      USERS_ENCRYPTION_KEYS: `bench:${encryptionKey.toString('base64')}`,
      USERS_ENCRYPTION_ACTIVE_KEY_ID: 'bench',
      USERS_DATABASE_URL: dbUrl('users'),
      MEALS_DATABASE_URL: dbUrl('meals'),
      ORDERS_DATABASE_URL: dbUrl('orders'),
      PAYMENTS_DATABASE_URL: dbUrl('payments'),
      REDIS_URL: config.redisUrl,
      REDIS_KEY_PREFIX: redisPrefix,
    },
  };
  const oursEnv = Object.fromEntries(
    ['USER', 'IP'].flatMap((scope) =>
      ['QUERIES', 'MUTATIONS', 'SUBSCRIPTIONS'].map((kind) => [`RATE_LIMIT_${scope}_${kind}`, rateLimit]),
    ),
  );
  log(`starting the subgraphs and workers (${built ? 'dist/' : 'sources via tsx'}, NODE_ENV=production)`);
  const backend: Backend = await startBackend(launch);
  const supergraphPath = `${logDir}/supergraph.graphql`;
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
    anonymousInternalToken,
    mealIds: Array.from({ length: 50 }, (_, k) => mealId(availableMeal(k * 17, config.seed))),
  };
  const staff = await logIn(backend.urls.users, anonymousInternalToken, STAFF_EMAIL);

  const cpuGroups =
    (target?: RunningTarget) =>
    (clientPid: number): CpuGroups => ({
      gateway: () => (target?.process ? [target.process.pid] : []),
      users: () => [backend.processes.users.pid],
      meals: () => [backend.processes.meals.pid],
      orders: () => [backend.processes.orders.pid],
      payments: () => [backend.processes.payments.pid],
      workers: () => workers.map((worker) => backend.processes[worker].pid),
      postgres: () => pidsNamed('postgres'),
      redis: () => pidsNamed('redis-server'),
      client: () => [clientPid],
      bench: () => [process.pid],
    });
  const settings = {
    connections: config.queryConnections,
    warmupSeconds: config.warmupSeconds,
    durationSeconds: config.durationSeconds,
  };

  // HTTP workloads: one target at a time, every target once per round (A B C D, A B C D, ...).
  const targets = config.targets.filter((target) => httpWorkloads.some((w) => appliesTo(w, target)));

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
      for (const workload of httpWorkloads.filter((w) => appliesTo(w, warmName))) {
        const spec = loadSpec(workload, warm, identities, {
          connections: workload === 'mutations' ? config.mutationConnections : config.queryConnections,
          warmupSeconds: 0,
          durationSeconds: config.backendWarmupSeconds,
        });
        await measure(spec, warm, cpuGroups(warm), backend.urls, logDir);
        if (workload === 'mutations') await quiesce(dbUrl);
      }
    } finally {
      await warm.stop();
    }
  }
  for (let round = 1; round <= config.rounds && httpWorkloads.length > 0; round++) {
    for (const name of targets) {
      log(`round ${round}/${config.rounds}: starting ${name}`);
      let target: RunningTarget;
      try {
        target = await startTarget(name, {
          launch,
          backend,
          supergraphPath,
          oursEnv,
          baseDir: config.baseDir,
          tag: `r${round}`,
        });
      } catch (error) {
        // Its workloads of this round are missing from the report, which says why.
        const message = error instanceof Error ? error.message : String(error);
        results.errors.push(`round ${round}: ${name} did not start: ${message.slice(0, 2_000)}`);
        log(`  ${name} DID NOT START: ${message.slice(0, 500)}`);
        continue;
      }
      try {
        for (const workload of httpWorkloads.filter((w) => appliesTo(w, name))) {
          const spec = loadSpec(workload, target, identities, {
            ...settings,
            connections: workload === 'mutations' ? config.mutationConnections : config.queryConnections,
          });
          const run: HttpRun = {
            workload,
            target: name,
            round,
            cpu: {},
            gatewayPeakRss: 0,
            subgraphRequests: {},
            problems: [],
          };
          results.runs.push(run);
          const wrong = await verify(spec);
          if (wrong) {
            run.problems.push(`verification request failed: ${wrong}`);
            log(`  ${workload} on ${name}: VERIFICATION FAILED: ${wrong.slice(0, 300)}`);
            continue;
          }
          // A run disturbed by other work on the machine is repeated once (the report keeps the count).
          for (let attempt = 1; ; attempt++) {
            const attemptStarted = Date.now();
            run.otherCpuBefore = await quietMachine(cpuGroups(target)(0));
            const measured = await measure(spec, target, cpuGroups(target), backend.urls, logDir);
            run.result = measured.result;
            run.cpu = measured.cpu;
            run.gatewayPeakRss = measured.gatewayPeakRss;
            run.subgraphRequests = measured.subgraphRequests;
            run.attempts = attempt;
            run.problems = problemsOf(measured.result);
            const r = measured.result;
            log(
              `  ${workload.padEnd(12)} ${name.padEnd(6)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${r.latencyMs.p50} ms  ` +
                `p99 ${r.latencyMs.p99} ms  gateway CPU ${measured.cpu.gateway ?? '-'}%  other CPU ${measured.cpu.other}%` +
                (run.problems.length ? `  ERRORS: ${run.problems.join('; ')}` : ''),
            );
            if (workload === 'mutations') await quiesce(dbUrl);
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

  if (config.workloads.includes('subscriptions') && config.targets.includes('ours')) {
    results.subscriptions = await subscriptions(backend, launch, oursEnv, staff.jwt, cpuGroups, results);
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
    'open files (soft/hard)': `${limit.soft}/${limit.hard}`,
  };
  results.notes = notes(raisedLimits, {
    federated: identities.federated.length,
    mutations: identities.mutations.length,
  });
  write(results);
}

async function subscriptions(
  backend: Backend,
  launch: Launch,
  oursEnv: Record<string, string>,
  staffJwt: string,
  cpuGroups: (target?: RunningTarget) => (clientPid: number) => CpuGroups,
  results: BenchResults,
): Promise<SubscriptionRun[]> {
  const most = Math.max(...config.subscribers);
  log(`subscriptions: starting our gateway for ${config.subscribers.join(' and ')} subscribers`);
  const gateway = await startTarget('ours', {
    launch,
    backend,
    supergraphPath: '',
    oursEnv,
    tag: 'subscriptions',
    openFiles: most + 2_048,
    gcOnSignal: true,
  });
  const userTokens = new UserTokens({
    secret: launch.env.JWT_SECRET!,
    issuer: 'food-users',
    audience: 'food-supergraph',
    ttlSeconds: 86_400,
  });
  // Each subscriber follows a PAID order of its own, as that order's customer (a JWT as logIn issues it:
  // thousands of scrypt logins would take longer than the whole bench).
  const paid = paidOrders(config.seed);
  const needed =
    config.subscriptionMode === 'order'
      ? config.subscribers.reduce((a, b) => a + b, 0)
      : config.feedChanges * config.subscribers.length;
  const runs: SubscriptionRun[] = [];
  if (paid.length < needed) {
    results.errors.push(
      `subscriptions: ${needed} PAID orders needed, the seed has ${paid.length} (raise BENCH_SEED_ORDERS)`,
    );
    await gateway.stop();
    return runs;
  }
  let next = 0;
  try {
    for (const n of config.subscribers) {
      const mine =
        config.subscriptionMode === 'order'
          ? paid.slice(next, (next += n))
          : paid.slice(next, (next += config.feedChanges));
      const subscribers = [];
      for (let k = 0; k < n; k++) {
        if (config.subscriptionMode === 'feed') {
          subscribers.push({ token: staffJwt });
        } else {
          const i = mine[k]!;
          const { token } = await userTokens.issue(userId(customerOf(i, config.seed)), 'CUSTOMER');
          subscribers.push({ token, orderId: orderId(i) });
        }
      }
      // Order mode: a sample of the subscribers' orders, spread over all of them, changes once each.
      const step = Math.max(1, Math.ceil(n / config.changes));
      const changed = config.subscriptionMode === 'order' ? mine.filter((_, k) => k % step === 0) : mine;
      runs.push(
        await runSubscriptions({
          gatewayUrl: gateway.url,
          gateway: gateway.process!,
          staffJwt,
          subscribers,
          changeOrders: changed.map(orderId),
          mode: config.subscriptionMode,
          changeRate: config.changeRate,
          idleSeconds: config.subscriberIdleSeconds,
          cpuGroups: cpuGroups(gateway),
          logDir,
          log,
        }),
      );
      await sleep(1_000);
    }
  } catch (error) {
    results.errors.push(`subscriptions: ${error instanceof Error ? error.message : String(error)}`);
    log(`subscriptions FAILED: ${String(error)}`);
  } finally {
    await gateway.stop();
  }
  return runs;
}

function notes(raised: typeof raisedLimits, customers: { federated: number; mutations: number }): string[] {
  const subscriptionNote =
    config.subscriptionMode === 'order'
      ? "each follows its own PAID order as that order's customer (one connection each); once all are connected " +
        `and idle, staff move ${config.changes} of those orders (spread over all subscribers; all of them when ` +
        `there are fewer) to ACCEPTED, at ${config.changeRate} changes/s. "Connected" means the subscriber also ` +
        'received its first result (the current state), so every subscriber got one delivery; "delivered" counts the changes'
      : `every subscriber follows the STAFF feed, and staff change ${config.feedChanges} orders, one per second: ` +
        'each change goes to every subscriber';
  return [
    "Every deployable is its own process, as deployed: four subgraphs (Prisma on this machine's Postgres, one fresh " +
      'database each, created, migrated and dropped by the bench), the orders, payments and meals workers, and one gateway ' +
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
      'mutations = placeOrder then payForOrder (tok_sandbox_success, a new idempotency key each) as ' +
      `${customers.mutations} other customers. Each run is a fixed concurrency (${config.queryConnections} connections ` +
      `for queries, ${config.mutationConnections} for the mutation mix) for ${config.durationSeconds} s after ` +
      `${config.warmupSeconds} s of the same load, by autocannon in its own process.`,
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
    'Subscriptions: our gateway only (peers have no Redis event source). Subscribers are graphql-ws clients in a ' +
      `separate process (up to 64 subscribing at once); ${subscriptionNote}. Subscribers' JWTs are signed with the ` +
      "run's JWT_SECRET exactly as logIn issues them (thousands of scrypt logins would take longer than the bench). " +
      'Memory per subscriber: one gateway process for every subscriber count in turn (1,000 first, so the larger ' +
      'count is measured in a warm process; the first count carries one-time costs such as compiled code); before ' +
      'connecting and once all are connected and idle, the gateway runs a full garbage collection (SIGUSR2 with ' +
      '--expose-gc, bench only) and the lowest of six readings of its /metrics is taken; (after - before) / connected.',
    raised.length > 0
      ? `Open files: the soft limit was raised for ${raised.length} child process(es) (${raised
          .map((r) => `${r.from} -> ${r.to}`)
          .join(', ')}).`
      : `Open files: the soft limit (${fdLimit().soft}) was already enough for every process; nothing was raised.`,
  ];
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
