import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import pg from 'pg';
import { generateSigningJwk, newId, PersonalDataCipher, signingKeysEnv, UserTokenSigner } from '@food/platform';
import { deleteKeys, PostgresReplicaPair, redisEnvOf } from '@food/platform/testing';
import { migrateDeploy, databaseServices } from '@food/prisma';
import { withPostgres } from '@food/prisma/testing';
import type { BenchConfig, VolumeConfig } from './config.js';
import { CHANGE_ORDER } from './live-operations.js';
import type { LoadResult, LoadSpec } from './load-client.js';
import { CpuWindow, pidsNamed, sleep, type CpuGroups } from './procs.js';
import { problemsOf } from './results.js';
import { availableMeal, mealId, seed, userId, type BenchDatabase, type Secrets, serviceKeysEnv } from './seed.js';
import { startBackend, startTarget, workers, writeSupergraph, type Backend, type RunningTarget } from './targets.js';
import {
  isPaid,
  preparePartitions,
  seedOrders,
  tableSizes,
  volumeLayout,
  volumeOrderId,
  type VolumeLayout,
} from './volume-seed.js';
import { measure } from './workloads.js';

/**
 * BENCH_VOLUME=1 (issue 15): the orders database at 100k, 1M and 10M orders, and read replicas.
 *
 * The orders database lives on a primary + streaming standby of the bench's own (the platform's
 * PostgresReplicaPair: PostgreSQL's binaries, a temporary directory), so that its CPU is the cluster's
 * alone and a replica can be switched on; users, meals and payments are on the machine's Postgres as
 * in the default run. Each size has its own orders database on the pair, seeded from empty (orders
 * 1..size of one layout), and its own Redis key prefix (its events and caches stay its own). Then the
 * rounds: in each, every size in turn (the order rotating from round to round), our gateway with the
 * four subgraphs and three workers on that size's database measuring the four workloads below. A
 * size's ratio to the smallest is taken within a round, minutes apart on the same machine, and the
 * median of the rounds' ratios reported: the machine's speed drifts over the half hour a 10M seed
 * takes, so sizes measured one after the other measured the drift too. At the largest size, the read
 * mix runs again with the orders subgraph reading from the standby (ORDERS_DATABASE_REPLICA_URLS),
 * against the same mix without, for the primary's CPU per read.
 */

/** placeOrder requests prepared per run, each a new order (idempotency key): more than a run sends here. */
const PLACE_ORDER_REQUESTS = 20_000;

/**
 * Each workload runs twice per size and round: saturated (requests/s; its latency is mostly queueing,
 * the connections over the throughput) and then held at this share of the smallest size's saturated
 * requests/s, where latency is the requests' own time: the goals' p99 is this run's, as load tools
 * measure latency at a constant arrival rate (wrk2, k6's constant-arrival-rate).
 */
export const FIXED_RATE_SHARE = 0.5;

/** Seconds of the read mix through each new stack before its runs (see warmStack). */
const STACK_WARMUP_SECONDS = 6;

/** The orders primary's and standby's shared_buffers in the volume run. */
const SHARED_BUFFERS = '1GB';

export const volumeWorkloads = ['my-orders', 'order', 'place-order', 'kitchen'] as const;
export type VolumeWorkload = (typeof volumeWorkloads)[number];

export const VOLUME_QUERIES = {
  'my-orders': `query MyOrders { myOrders(first: 10) { edges { node { id status total { amount currency } createdAt items { mealName quantity unitPrice { amount } } } } } }`,
  order: `query Order($id: ID!) { order(id: $id) { id status version total { amount currency } createdAt items { mealName quantity } statusHistory { to at } } }`,
  'place-order': `mutation PlaceOrder($input: PlaceOrderInput!) { placeOrder(input: $input) { id status total { amount currency } } }`,
  kitchen: CHANGE_ORDER,
} as const;

export interface VolumeRun {
  size: number;
  workload: VolumeWorkload | 'read-mix';
  /** Read replicas the orders subgraph had (the replica comparison; 0 otherwise). */
  replicas: number;
  round: number;
  /**
   * The fixed load this run was held at, requests/s (load-client's `fixedRate`): the latency runs.
   * Unset: the saturated run, every connection as fast as it is answered (requests/s).
   */
  rate?: number;
  result?: LoadResult;
  /** % of one core over the measured window, per process group. */
  cpu: Record<string, number>;
  /** CPU % of one core that processes outside the bench used just before the run. */
  otherCpuBefore: number;
  /** Reads the orders subgraph sent to a replica during the run (db_replica_reads_total). */
  replicaReads?: number;
  problems: string[];
}

export interface VolumeSize {
  size: number;
  /** Seconds to add this size's rows (ANALYZE included), and the whole database's tables then. */
  seedSeconds: number;
  tables: { table: string; rows: number; partitions: number; bytes: number }[];
}

export interface VolumeResults {
  date: string;
  wallSeconds: number;
  machine: Record<string, string | number>;
  settings: Record<string, string | number>;
  sizes: VolumeSize[];
  runs: VolumeRun[];
  /** EXPLAIN (ANALYZE, BUFFERS) of each workload's main statement at the largest size. */
  explains: Partial<Record<VolumeWorkload | 'read-mix', { sql: string; plan: string }>>;
  partitions: string[];
  errors: string[];
  /** Set while sizes remain to be measured (a checkpoint's report). */
  partial?: boolean;
}

export interface VolumeContext {
  config: BenchConfig;
  volume: VolumeConfig;
  built: boolean;
  log: (line: string) => void;
  logDir: string;
  runId: string;
  redisPrefix: string;
  rateLimit: string;
  /** Databases on the machine's Postgres, for the run's clean-up to drop. */
  track: (databases: BenchDatabase[]) => void;
  /** Something the clean-up must undo (the replica pair). */
  onCleanUp: (undo: () => Promise<void>) => void;
  /** Called after each size with what is measured so far (`partial` set): a report of it survives a stop. */
  checkpoint: (results: VolumeResults) => void;
}

/** Every process of one PostgreSQL cluster: its postmaster (found from a backend) and its children. */
async function clusterPids(url: string): Promise<() => number[]> {
  const parentOf = (pid: number) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      return 0;
    }
  };
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let postmaster: number;
  try {
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    // Read while the backend is alive: once the client ends, it is gone.
    postmaster = parentOf(rows[0]!.pid);
  } finally {
    await client.end();
  }
  if (postmaster <= 1) throw new Error(`no postmaster found for ${url}`);
  return () => [
    postmaster,
    ...readdirSync('/proc')
      .filter((entry) => /^\d+$/.test(entry))
      .map(Number)
      .filter((pid) => parentOf(pid) === postmaster),
  ];
}

/**
 * BENCH_QUIET_FILE: the file exists while the bench measures, so that cooperating work on a shared
 * machine (test runs that wait while it exists) stays off the cores; seeding does not hold it.
 */
function holdQuiet(ctx: VolumeContext, held: boolean): void {
  const file = ctx.volume.quietFile;
  if (!file) return;
  if (held) writeFileSync(file, `${process.pid}\n`);
  else rmSync(file, { force: true });
}

/**
 * Waits (up to 2 min: a test run that began before the quiet file appeared may be finishing) until
 * processes outside the bench use under 15 % of a core: this machine is shared. Returns what they
 * used in the last second.
 */
async function quietMachine(groups: CpuGroups, log: (line: string) => void): Promise<number> {
  const deadline = Date.now() + 120_000;
  let warned = false;
  for (;;) {
    const window = new CpuWindow(groups);
    await sleep(1_000);
    const { other = 0 } = window.finish();
    if (other < 15 || Date.now() > deadline) return other;
    if (!warned) log(`  the machine is busy with other work (${other}% of a core); waiting up to 2 min`);
    warned = true;
  }
}

async function post(url: string, headers: Record<string, string>, body: string): Promise<string | undefined> {
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    return response.ok && text.includes('"data"') && !text.includes('"errors"')
      ? undefined
      : `${response.status} ${text.slice(0, 500)}`;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

async function replicaReadCount(ordersUrl: string): Promise<number> {
  const text = await (await fetch(new URL('/metrics', ordersUrl))).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith('db_replica_reads_total'))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

/** Until every outbox event of the orders and payments services is published (at most 60 s). */
async function settle(urls: string[]): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    let pending = 0;
    for (const url of urls) {
      const rows = await withPostgres(url, (client) =>
        client.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox_events WHERE published_at IS NULL'),
      );
      pending += rows.rows[0]!.n;
    }
    if (pending === 0 || Date.now() > deadline) return;
    await sleep(250);
  }
}

export async function runVolume(ctx: VolumeContext): Promise<VolumeResults> {
  const { config, volume, log } = ctx;
  const startedAt = Date.now();
  const results: VolumeResults = {
    date: new Date().toISOString(),
    wallSeconds: 0,
    machine: {},
    settings: {},
    sizes: [],
    runs: [],
    explains: {},
    partitions: [],
    errors: [],
  };

  log('starting a PostgreSQL primary + streaming standby of our own for the orders database');
  const pair = await PostgresReplicaPair.start();
  ctx.onCleanUp(() => pair.stop());
  ctx.onCleanUp(async () => holdQuiet(ctx, false));
  // The harness is sized for tests (shared_buffers 32MB); millions of orders want a server's cache
  // (the machine's own Postgres has 128MB): both servers get SHARED_BUFFERS and are restarted, still
  // empty. Seeding writes gigabytes: fewer checkpoints. The harness's other settings stay.
  for (const url of [pair.primaryUrl(), pair.replicaUrl()])
    for (const setting of [
      `shared_buffers = '${SHARED_BUFFERS}'`,
      `max_wal_size = '4GB'`,
      `checkpoint_timeout = '30min'`,
      // The standby is stopped during the size rounds (see below): the primary keeps the WAL it
      // writes meanwhile (a few hundred MB) for the standby to catch up from.
      `wal_keep_size = '8GB'`,
    ])
      await pair.sql(url, `ALTER SYSTEM SET ${setting}`);
  await pair.stopPrimary();
  await pair.startPrimary();
  await pair.killReplica();
  await pair.startReplica();
  const [server] = await pair.sql<{ v: string; sb: string }>(
    pair.primaryUrl(),
    `SELECT version() AS v, current_setting('shared_buffers') AS sb`,
  );

  const sizes = volume.sizes;
  const createDatabase = async (admin: string, name: string) => {
    await withPostgres(admin, (client) => client.query(`CREATE DATABASE "${name}"`));
    const url = new URL(admin);
    url.pathname = `/${name}`;
    return url.toString();
  };
  // The other services' databases, on the machine's Postgres; the orders database of each size, on the pair.
  const databases: BenchDatabase[] = [];
  for (const service of databaseServices.filter((s) => s !== 'orders')) {
    const name = `bench_${service}_${ctx.runId}`;
    databases.push({ service, name, url: await createDatabase(config.postgresUrl, name) });
  }
  ctx.track(databases);
  const ordersDbs = new Map<number, string>();
  for (const size of sizes)
    ordersDbs.set(size, await createDatabase(pair.primaryUrl(), `bench_orders_${size}_${ctx.runId}`));
  const ordersUrl = (size: number) => ordersDbs.get(size)!;
  const dbUrl = (service: string) => databases.find((db) => db.service === service)!.url;
  await Promise.all([
    ...databases.map((db) => migrateDeploy(db.service, db.url)),
    ...sizes.map((size) => migrateDeploy('orders', ordersUrl(size))),
  ]);

  const meals = config.seed.meals;
  // The services' personal-data keys: rows are seeded sealed, as the services write them.
  const keys: Secrets = {
    encryptionKeyId: 'bench',
    usersKey: randomBytes(32),
    blindIndexKey: randomBytes(32),
    ordersKey: randomBytes(32),
  };
  const ordersCipher = new PersonalDataCipher(new Map([[keys.encryptionKeyId, keys.ordersKey]]), keys.encryptionKeyId);
  // Users and meals as the default run seeds them; orders come below, at each size.
  const noOrders = { service: 'orders' as const, name: '', url: ordersUrl(sizes[0]!) };
  await seed([...databases, noOrders], { users: volume.customers, meals, orders: 0 }, keys);
  // One layout for every size: order i is the same order (time, id, customer) in each database.
  const layout = volumeLayout(startedAt - 60_000, sizes.at(-1)!, volume.customers, meals);
  for (const size of sizes) results.partitions = await preparePartitions(ordersUrl(size), layout);
  log(`orders partitions ${results.partitions[0]} .. ${results.partitions.at(-1)} (and the worker's months ahead)`);

  const secrets = { INTERNAL_TOKEN_SECRET: randomBytes(32).toString('hex') };
  // The run's access-token key pair: the users service signs with it (and the bench, below); the
  // gateway only sees the public half, through the users service's JWKS.
  const signingKey = generateSigningJwk('bench');
  const usersEnv = { USERS_SIGNING_KEYS: JSON.stringify([signingKey]), USERS_SIGNING_ACTIVE_KEY_ID: 'bench' };
  const redisPrefixOf = (size: number) => `${ctx.redisPrefix}-${size}`;
  for (const size of sizes)
    ctx.onCleanUp(() => deleteKeys(`${redisPrefixOf(size)}:`, { mode: 'single', url: config.redisUrl }));
  const launchEnv = (size: number, replicaUrls: string) => ({
    ...secrets,
    NODE_ENV: 'production',
    ...serviceKeysEnv(keys),
    USERS_DATABASE_URL: dbUrl('users'),
    MEALS_DATABASE_URL: dbUrl('meals'),
    ORDERS_DATABASE_URL: ordersUrl(size),
    ORDERS_DATABASE_REPLICA_URLS: replicaUrls,
    PAYMENTS_DATABASE_URL: dbUrl('payments'),
    ...redisEnvOf({ mode: 'single', url: config.redisUrl }),
    // Each size's events, jobs and caches apart: a stack never sees another size's orders.
    REDIS_KEY_PREFIX: redisPrefixOf(size),
  });
  const oursEnv = Object.fromEntries(
    ['USER', 'IP'].flatMap((scope) =>
      ['QUERIES', 'MUTATIONS', 'SUBSCRIPTIONS'].map((kind) => [`RATE_LIMIT_${scope}_${kind}`, ctx.rateLimit]),
    ),
  );

  // Callers: JWTs as logIn issues them (ten thousand scrypt logins would take longer than a size).
  const userTokens = new UserTokenSigner({
    keys: signingKeysEnv.parse(usersEnv.USERS_SIGNING_KEYS),
    activeKeyId: usersEnv.USERS_SIGNING_ACTIVE_KEY_ID,
    issuer: 'food-users',
    audience: 'food-supergraph',
    ttlSeconds: 86_400,
  });
  const bearer = async (n: number, role: 'CUSTOMER' | 'STAFF') => ({
    authorization: `Bearer ${(await userTokens.issue({ userId: userId(n), role, sessionId: randomUUID() })).token}`,
  });
  const readers = volume.customers - volume.placingCustomers;
  const readerHeaders: Record<string, string>[] = [];
  for (let c = 1; c <= readers; c++) readerHeaders.push(await bearer(c, 'CUSTOMER'));
  const placerHeaders: Record<string, string>[] = [];
  for (let c = readers + 1; c <= volume.customers; c++) placerHeaders.push(await bearer(c, 'CUSTOMER'));
  const staffHeaders = await bearer(0, 'STAFF');
  const mealIds = Array.from({ length: 50 }, (_, k) => mealId(availableMeal(k * 17, { users: 1, meals, orders: 1 })));
  /** Per size: the kitchen's next PAID order (orders before it were moved on in earlier rounds). */
  const nextPaid = new Map(sizes.map((size) => [size, 1]));

  /** The prepared requests of one workload at `size` (orders 1..size exist). */
  const requestsOf = (workload: VolumeWorkload | 'read-mix', size: number) => {
    const myOrders = (c: number) => ({
      headers: readerHeaders[c - 1]!,
      body: JSON.stringify({ query: VOLUME_QUERIES['my-orders'] }),
    });
    const order = (c: number) => {
      // A random order of customer c: orders c, c + customers, c + 2 customers, ... up to size.
      const count = Math.floor((size - c) / volume.customers) + 1;
      const i = c + volume.customers * Math.floor(Math.random() * count);
      return {
        headers: readerHeaders[c - 1]!,
        body: JSON.stringify({ query: VOLUME_QUERIES.order, variables: { id: volumeOrderId(i, layout) } }),
      };
    };
    // Callers in rotation: each one again only after every other reader.
    if (workload === 'my-orders') return Array.from({ length: readers }, (_, k) => myOrders(k + 1));
    if (workload === 'order') return Array.from({ length: readers * 2 }, (_, k) => order((k % readers) + 1));
    if (workload === 'read-mix')
      return Array.from({ length: readers * 2 }, (_, k) =>
        k % 2 === 0 ? myOrders((k % readers) + 1) : order((k % readers) + 1),
      );
    if (workload === 'place-order')
      // Each with its own idempotency key: none is answered as a repeat (a run sends ~1,000).
      return Array.from({ length: PLACE_ORDER_REQUESTS }, (_, k) => {
        const items = [{ mealId: mealIds[k % mealIds.length], quantity: 1 + (k % 2) }];
        if (k % 3 === 0) items.push({ mealId: mealIds[(k * 7) % mealIds.length], quantity: 1 });
        return {
          headers: placerHeaders[k % placerHeaders.length]!,
          body: JSON.stringify({
            query: VOLUME_QUERIES['place-order'],
            variables: {
              input: { deliveryAddress: '1 Benchmark Street, Berlin', items, idempotencyKey: `volume-${randomUUID()}` },
            },
          }),
        };
      });
    // The kitchen: staff move PAID orders on to ACCEPTED, each order once, never one moved before.
    const list: { headers: Record<string, string>; body: string }[] = [];
    for (let i = nextPaid.get(size)!; i <= size && list.length < 50_000; i++) {
      if (!isPaid(i)) continue;
      list.push({
        headers: staffHeaders,
        body: JSON.stringify({
          query: CHANGE_ORDER,
          variables: { input: { orderId: volumeOrderId(i, layout), status: 'ACCEPTED' } },
        }),
      });
    }
    return list;
  };
  /** The kitchen's list starts after the orders taken: `sent` of them are ACCEPTED now. */
  const advanceKitchen = (sent: number, size: number) => {
    let [taken, next] = [0, nextPaid.get(size)!];
    while (taken < sent && next <= size) if (isPaid(next++)) taken++;
    nextPaid.set(size, next);
  };

  const primaryPids = await clusterPids(pair.primaryUrl());
  // Found again when the standby restarts (it rests during the size rounds).
  let replicaPids = await clusterPids(pair.replicaUrl());
  const groups = (backend: Backend, gateway: RunningTarget) => (clientPid: number) => {
    const pairPids = () => new Set([...primaryPids(), ...replicaPids()]);
    return {
      gateway: () => [gateway.process!.pid],
      orders: () => [backend.processes.orders.pid],
      'other subgraphs': () => ['users', 'meals', 'payments'].map((s) => backend.processes[s as 'users'].pid),
      workers: () => workers.map((worker) => backend.processes[worker].pid),
      'orders primary': primaryPids,
      'orders standby': () => replicaPids(),
      'machine postgres': () => {
        const ours = pairPids();
        return pidsNamed('postgres').filter((pid) => !ours.has(pid));
      },
      redis: () => pidsNamed('redis-server'),
      client: () => [clientPid],
      bench: () => [process.pid],
    } satisfies CpuGroups;
  };

  const startStack = async (size: number, tag: string, replicaUrls: string) => {
    const launch = { build: ctx.built, logDir: ctx.logDir, env: launchEnv(size, replicaUrls), usersEnv };
    const backend = await startBackend(launch);
    const supergraphPath = `${ctx.logDir}/supergraph-${tag}.graphql`;
    writeSupergraph(backend.urls, supergraphPath);
    const gateway = await startTarget('ours', { launch, backend, supergraphPath, oursEnv, tag });
    return { backend, gateway };
  };
  /**
   * A new stack's first seconds are not the workloads': connection pools, the gateway's token keys,
   * JIT, the database's caches for this size. The read mix runs through it first, unmeasured.
   */
  const warmStack = async (stack: { backend: Backend; gateway: RunningTarget }, size: number) => {
    const spec: LoadSpec = {
      url: stack.gateway.url,
      connections: config.queryConnections,
      warmupSeconds: 0,
      durationSeconds: STACK_WARMUP_SECONDS,
      kind: 'requests',
      identities: [],
      requests: requestsOf('read-mix', size),
    };
    await measure(spec, stack.gateway, groups(stack.backend, stack.gateway), stack.backend.urls, ctx.logDir);
  };
  const stopStack = async ({ backend, gateway }: { backend: Backend; gateway: RunningTarget }) => {
    await gateway.stop();
    await Promise.all(Object.values(backend.processes).map((p) => p.stop()));
  };

  const runOne = async (
    stack: { backend: Backend; gateway: RunningTarget },
    size: number,
    workload: VolumeWorkload | 'read-mix',
    replicas: number,
    round: number,
    rate?: number,
  ): Promise<VolumeRun> => {
    const otherBefore = await quietMachine(groups(stack.backend, stack.gateway)(process.pid), log);
    const writes = workload === 'place-order' || workload === 'kitchen';
    const requests = requestsOf(workload, size);
    const run: VolumeRun = {
      size,
      workload,
      replicas,
      round,
      ...(rate !== undefined && { rate }),
      cpu: {},
      otherCpuBefore: otherBefore,
      problems: [],
    };
    if (requests.length === 0) {
      run.problems.push('no requests to make (no PAID order left)');
      return run;
    }
    // One request first, as the default run verifies: a wrong answer is not measured.
    const first = requests.shift()!;
    const wrong = await post(stack.gateway.url, first.headers, first.body);
    if (workload === 'kitchen') advanceKitchen(1, size);
    if (wrong) {
      run.problems.push(`verification: ${wrong}`);
      return run;
    }
    const spec: LoadSpec = {
      url: stack.gateway.url,
      connections: writes ? config.mutationConnections : config.queryConnections,
      warmupSeconds: config.warmupSeconds,
      // At half the rate, twice the time: the fixed-rate p99 rests on as many answers as the saturated one.
      durationSeconds: rate !== undefined ? 2 * config.durationSeconds : config.durationSeconds,
      kind: 'requests',
      identities: [],
      requests,
      ...(rate !== undefined && { fixedRate: rate }),
    };
    const readsBefore = await replicaReadCount(stack.backend.urls.orders);
    try {
      const measured = await measure(
        spec,
        stack.gateway,
        groups(stack.backend, stack.gateway),
        stack.backend.urls,
        ctx.logDir,
      );
      run.result = measured.result;
      run.cpu = measured.cpu;
      run.problems.push(...problemsOf(measured.result));
      const sent = measured.result.sent ?? 0;
      if (workload === 'kitchen') {
        advanceKitchen(sent, size);
        if (sent > requests.length) run.problems.push(`ran out of PAID orders (${requests.length}) and repeated some`);
      }
      if (workload === 'place-order' && sent > requests.length)
        run.problems.push(`sent more than its ${requests.length} distinct orders: some were repeats`);
    } catch (error) {
      run.problems.push(error instanceof Error ? error.message : String(error));
    }
    run.replicaReads = (await replicaReadCount(stack.backend.urls.orders)) - readsBefore;
    if (writes) await settle([ordersUrl(size), dbUrl('payments')]);
    const r = run.result;
    log(
      `  ${size.toLocaleString('en')} ${workload}${replicas ? ` (${replicas} replica)` : ''}` +
        `${rate !== undefined ? ` at ${rate} req/s` : ''} round ${round}: ` +
        (r
          ? `${r.rps.toFixed(0)} req/s, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, primary ${run.cpu['orders primary']}%, standby ${run.cpu['orders standby']}%`
          : 'no result') +
        (run.problems.length ? `; PROBLEMS: ${run.problems.join('; ').slice(0, 300)}` : ''),
    );
    return run;
  };

  const noteSettings = () => {
    results.settings = {
      BENCH_VOLUME_SIZES: sizes.join(','),
      BENCH_VOLUME_CUSTOMERS: volume.customers,
      BENCH_VOLUME_PLACING_CUSTOMERS: volume.placingCustomers,
      BENCH_VOLUME_ROUNDS: volume.rounds,
      BENCH_DURATION_SECONDS: config.durationSeconds,
      BENCH_WARMUP_SECONDS: config.warmupSeconds,
      BENCH_CONNECTIONS: config.queryConnections,
      BENCH_MUTATION_CONNECTIONS: config.mutationConnections,
      FIXED_RATE_SHARE,
      'orders database': `${server!.v.split(' on ')[0]} (the bench's own primary + standby, shared_buffers ${server!.sb}, fsync off)`,
      meals: meals,
    };
  };
  for (const size of sizes) {
    log(`seeding orders 1 .. ${size.toLocaleString('en')} into their own database`);
    const t0 = Date.now();
    await seedOrders(ordersUrl(size), layout, 0, size, ordersCipher, (share) => {
      if (share < 1) log(`  ${Math.round(share * 100)} % of the year (${Math.round((Date.now() - t0) / 1000)} s)`);
    });
    const seedSeconds = (Date.now() - t0) / 1000;
    const tables = await tableSizes(ordersUrl(size));
    results.sizes.push({ size, seedSeconds, tables });
    log(`  seeded in ${seedSeconds.toFixed(0)} s: ${tables.map((t) => `${t.table} ${t.rows}`).join(', ')}`);
  }
  // The standby catches up before anything is measured (it replays the seeds' WAL); then both
  // servers checkpoint and the kernel writes back what they wrote: seeding leaves gigabytes of dirty
  // pages (fsync is off), whose writeback stalled the first runs after it for seconds (a measured
  // 1,000,000 myOrders run had no answer within the gateway's 10 s upstream timeout).
  await pair.waitForReplay(30 * 60_000);
  log('  checkpoint on the primary and the standby, then sync');
  await pair.sql(pair.primaryUrl(), 'CHECKPOINT');
  await pair.sql(pair.replicaUrl(), 'CHECKPOINT');
  await promisify(execFile)('sync');
  // One machine's page cache holds one copy of every size (13.7 GiB at 10M) but not two: with the
  // standby up, the primary's pages and the standby's evict each other, and the rounds measured the
  // disk (order(id) at 10M: 53 ms in one index scan, 6 blocks read). On their own hosts each server
  // has its own memory; here the standby rests while the sizes are compared.
  log('  standby stopped for the size rounds (it catches up before the replica comparison)');
  await pair.killReplica();
  replicaPids = () => [];
  noteSettings();

  const fixedRates = new Map<VolumeWorkload, number>();
  for (let round = 1; round <= volume.rounds; round++) {
    // Every size once per round, the first one rotating: no size is always measured first or last.
    const order = sizes.map((_, k) => sizes[(k + round - 1) % sizes.length]!);
    for (const size of order) {
      holdQuiet(ctx, true);
      await prewarm(ordersUrl(size), log);
      const stack = await startStack(size, `${size}-round${round}`, '');
      try {
        await warmStack(stack, size);
        for (const workload of volumeWorkloads) {
          const saturated = await runOne(stack, size, workload, 0, round);
          results.runs.push(saturated);
          // The latency runs' load: half what the smallest size took when saturated, the first time it
          // was measured (round 1 starts with it), the same for every size and round after.
          if (size === sizes[0] && !fixedRates.has(workload) && saturated.result && saturated.problems.length === 0)
            fixedRates.set(workload, Math.max(1, Math.round(saturated.result.rps * FIXED_RATE_SHARE)));
          const rate = fixedRates.get(workload);
          if (rate !== undefined) results.runs.push(await runOne(stack, size, workload, 0, round, rate));
        }
      } finally {
        await stopStack(stack);
        holdQuiet(ctx, false);
      }
    }
    results.wallSeconds = (Date.now() - startedAt) / 1000;
    if (round < volume.rounds) ctx.checkpoint({ ...results, partial: true });
  }

  const largest = sizes.at(-1)!;
  // While the primary's cache is still the rounds' (the replica comparison below warms the standby's).
  results.explains = await explains(ordersUrl(largest), layout, largest, volume);
  log(
    `  the read mix (myOrders and order(id), half each) at ${largest.toLocaleString('en')}, without a replica, then with one`,
  );
  holdQuiet(ctx, true);
  await prewarm(ordersUrl(largest), log);
  let stack = await startStack(largest, `${largest}-primary`, '');
  try {
    await warmStack(stack, largest);
    for (let round = 1; round <= volume.rounds; round++)
      results.runs.push(await runOne(stack, largest, 'read-mix', 0, round));
    await stopStack(stack);
    await pair.startReplica();
    replicaPids = await clusterPids(pair.replicaUrl());
    await pair.waitForReplay(10 * 60_000);
    // The server that answers the reads is warm, as the primary was for the runs without it.
    const standbyUrl = pair.replicaUrl(ordersUrl(largest).split('/').at(-1));
    await prewarm(standbyUrl, log);
    stack = await startStack(largest, `${largest}-replica`, standbyUrl);
    await warmStack(stack, largest);
    for (let round = 1; round <= volume.rounds; round++)
      results.runs.push(await runOne(stack, largest, 'read-mix', 1, round));
  } finally {
    await stopStack(stack);
    holdQuiet(ctx, false);
  }
  results.wallSeconds = (Date.now() - startedAt) / 1000;
  return results;
}

/**
 * Reads every table and index of one database into the OS page cache (pg_prewarm's 'read' mode), as
 * on a server that has been serving them: the sizes are compared on their query plans, not on how
 * much of a freshly seeded database the kernel happens to have kept. A standby has the extension
 * through replication.
 */
async function prewarm(url: string, log: (line: string) => void): Promise<void> {
  const t0 = Date.now();
  await withPostgres(url, async (client) => {
    if (!(await client.query<{ standby: boolean }>('SELECT pg_is_in_recovery() AS standby')).rows[0]!.standby)
      await client.query('CREATE EXTENSION IF NOT EXISTS pg_prewarm');
    const { rows } = await client.query<{ blocks: string }>(
      `SELECT coalesce(sum(pg_prewarm(c.oid, 'read')), 0)::text AS blocks FROM pg_class c
       WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'i')`,
    );
    const gib = (Number(rows[0]?.blocks ?? 0) * 8192) / 2 ** 30;
    log(
      `  ${new URL(url).pathname.slice(1)} read into the page cache: ${gib.toFixed(2)} GiB in ${((Date.now() - t0) / 1000).toFixed(0)} s`,
    );
  });
}

/**
 * EXPLAIN (ANALYZE, BUFFERS) at the largest size of each workload's statement on the orders database:
 * the statements Prisma sends for it, written out by hand with a real caller's values. Writes run in a
 * transaction that is rolled back.
 */
async function explains(
  url: string,
  layout: VolumeLayout,
  size: number,
  volume: VolumeConfig,
): Promise<VolumeResults['explains']> {
  const c = 1 + Math.floor(Math.random() * (volume.customers - volume.placingCustomers));
  const customer = userId(c);
  const i = c + volume.customers * Math.floor(Math.random() * Math.floor((size - c) / volume.customers));
  const id = volumeOrderId(i, layout);
  // The newest PAID order: the kitchen moves them on from the oldest, so it is still PAID.
  let paid = size;
  while (!isPaid(paid)) paid--;
  const statements: Record<VolumeWorkload, string> = {
    'my-orders': `SELECT id, customer_id, status, total_amount, created_at FROM orders WHERE customer_id = '${customer}' ORDER BY created_at DESC, id DESC LIMIT 10`,
    order: `SELECT o.id, o.status, o.total_amount, o.created_at, (SELECT count(*) FROM order_items WHERE order_id = o.id) AS items,
      (SELECT count(*) FROM order_status_changes WHERE order_id = o.id) AS history FROM orders o WHERE o.id = '${id}'`,
    'place-order': `INSERT INTO orders (id, customer_id, status, currency, subtotal_amount, delivery_fee_amount, total_amount, delivery_address, version, created_at, updated_at)
      VALUES ('${newId()}', '${customer}', 'PENDING_PAYMENT', 'EUR', 1000, 299, 1299, 'x', 1, now(), now())`,
    kitchen: `UPDATE orders SET status = 'ACCEPTED', version = version + 1 WHERE id = '${volumeOrderId(paid, layout)}' AND status = 'PAID'`,
  };
  const out: VolumeResults['explains'] = {};
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const [workload, sql] of Object.entries(statements) as [VolumeWorkload, string][]) {
      await client.query('BEGIN');
      const { rows } = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS) ${sql}`);
      await client.query('ROLLBACK');
      out[workload] = { sql, plan: rows.map((row) => row['QUERY PLAN']).join('\n') };
    }
  } finally {
    await client.end();
  }
  return out;
}
