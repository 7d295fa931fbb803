import { fileURLToPath } from 'node:url';
import { readFileSync, writeFileSync } from 'node:fs';
import { repoRoot, peersDir, type TargetName } from './config.js';
import { answersOk, freePort, graphqlReady, start, waitUntil, type Managed } from './procs.js';
import { hiveBin } from './peers.js';
import { startCeiling } from './overhead/index.js';

export const subgraphs = ['users', 'meals', 'orders', 'payments'] as const;
export type Subgraph = (typeof subgraphs)[number];
/**
 * The workers, each its own process: the services with an outbox relay it (and consume events); the
 * users worker keeps personal data under the active key (nothing to do on the bench's seed).
 */
export const workers = ['orders-worker', 'payments-worker', 'meals-worker', 'users-worker'] as const;
export type Worker = (typeof workers)[number];
const workerPortVariable: Record<Worker, string> = {
  'orders-worker': 'ORDERS_WORKER_PORT',
  'payments-worker': 'PAYMENTS_WORKER_PORT',
  'meals-worker': 'MEALS_WORKER_PORT',
  'users-worker': 'USERS_WORKER_PORT',
};

export interface Launch {
  /** Built dist/ (production) or the sources through tsx. */
  build: boolean;
  logDir: string;
  /** Secrets, Redis, databases: what every service of this run shares. */
  env: Record<string, string>;
  /** What only the users service gets on top: the private keys it signs access tokens with. */
  usersEnv: Record<string, string>;
  /** Where our processes write their V8 CPU profiles (on exit), if at all. */
  cpuProfileDir?: string;
}

export interface Backend {
  urls: Record<Subgraph, string>;
  processes: Record<Subgraph | Worker, Managed>;
}

const nodeArgs = (launch: Launch, dir: string, entry: 'main' | 'worker-main', name: string = dir, root = repoRoot) => {
  const profile = launch.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${launch.cpuProfileDir}/${name}`] : [];
  return launch.build
    ? { cwd: `${root}${dir}`, args: [...profile, `dist/${entry}.js`] }
    : { cwd: `${root}${dir}`, args: [...profile, '--conditions=source', '--import', 'tsx', `src/${entry}.ts`] };
};

const gcOnSignalFile = fileURLToPath(new URL('./gc-on-signal.mjs', import.meta.url));

const baseEnv = () => ({ PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' });

/** The four subgraphs and the four workers, each its own process, as deployed. */
export async function startBackend(launch: Launch): Promise<Backend> {
  const ports = Object.fromEntries(await Promise.all(subgraphs.map(async (s) => [s, await freePort()]))) as Record<
    Subgraph,
    number
  >;
  const urls = Object.fromEntries(subgraphs.map((s) => [s, `http://127.0.0.1:${ports[s]}/graphql`])) as Record<
    Subgraph,
    string
  >;
  const env = {
    ...baseEnv(),
    ...launch.env,
    USERS_PORT: String(ports.users),
    MEALS_PORT: String(ports.meals),
    ORDERS_PORT: String(ports.orders),
    PAYMENTS_PORT: String(ports.payments),
    USERS_SUBGRAPH_URL: urls.users,
    MEALS_SUBGRAPH_URL: urls.meals,
    ORDERS_SUBGRAPH_URL: urls.orders,
    PAYMENTS_SUBGRAPH_URL: urls.payments,
    ORDERS_WORKER_PORT: String(await freePort()),
    PAYMENTS_WORKER_PORT: String(await freePort()),
    MEALS_WORKER_PORT: String(await freePort()),
    USERS_WORKER_PORT: String(await freePort()),
  };
  const processes = {} as Backend['processes'];
  const launchOne = async (name: keyof Backend['processes'], dir: string, entry: 'main' | 'worker-main') => {
    const { cwd, args } = nodeArgs(launch, dir, entry, name);
    // The users worker loads the users configuration whole: it needs the signing keys to start.
    const own = name === 'users' || name === 'users-worker' ? { ...env, ...launch.usersEnv } : env;
    const managed = start({ name, command: process.execPath, args, cwd, env: own, logDir: launch.logDir });
    processes[name] = managed;
    const ready =
      entry === 'main'
        ? answersOk(new URL('/readyz', urls[name as Subgraph]).href)
        : answersOk(`http://127.0.0.1:${env[workerPortVariable[name as Worker] as keyof typeof env]}/readyz`);
    await waitUntil(name, ready, managed, 90_000);
  };
  await Promise.all(subgraphs.map((s) => launchOne(s, `subgraphs/${s}`, 'main')));
  // The meals worker relays the menu's outbox (meal.availability_changed, for mealAvailabilityChanged).
  await Promise.all(
    workers.map((worker) => launchOne(worker, `subgraphs/${worker.replace(/-worker$/, '')}`, 'worker-main')),
  );
  return { urls, processes };
}

/** The committed supergraph with the bench's subgraph URLs: the peers read it as it is. */
export function writeSupergraph(urls: Record<Subgraph, string>, path: string): void {
  let sdl = readFileSync(`${repoRoot}gateway/supergraph.graphql`, 'utf8');
  for (const subgraph of subgraphs) {
    sdl = sdl.replace(
      new RegExp(`(@join__graph\\(name: "${subgraph}", url: ")[^"]*(")`),
      (_, before: string, after: string) => `${before}${urls[subgraph]}${after}`,
    );
  }
  for (const subgraph of subgraphs) {
    if (!sdl.includes(urls[subgraph])) throw new Error(`supergraph.graphql: no @join__graph for ${subgraph}`);
  }
  writeFileSync(path, sdl);
}

export interface RunningTarget {
  name: TargetName;
  url: string;
  /** The gateway process (none for `direct`: the subgraph itself is the server). */
  process?: Managed;
  stop(): Promise<void>;
}

export interface TargetOptions {
  launch: Launch;
  backend: Backend;
  supergraphPath: string;
  /** Our gateway's environment on top of the run's (rate budgets). */
  oursEnv: Record<string, string>;
  /** Where the `base` target's checkout is. */
  baseDir?: string;
  openFiles?: number;
  /** Preloads gc-on-signal.mjs with --expose-gc: SIGUSR2 collects garbage (memory readings). */
  gcOnSignal?: boolean;
  /** A distinct process name (log file) for each start. */
  tag: string;
  /**
   * The gateway-overhead workload: the targets serve the fixture subgraphs' supergraph (supergraphPath)
   * at the URLs it names; ours verifies tokens with the backend's users service all the same.
   */
  fixtures?: boolean;
  /** A peer with its documented response cache on (BENCH_PEER_CACHE=1 in bench/peers). */
  peerCache?: boolean;
  /** The ceiling target's answer: a file holding a gateway's response to the workload's query. */
  ceilingBodyFile?: string;
}

export async function startTarget(name: TargetName, options: TargetOptions): Promise<RunningTarget> {
  const { launch, backend, tag } = options;
  if (name === 'direct') return { name, url: backend.urls.meals, stop: async () => undefined };
  if (name === 'ceiling') {
    if (!options.ceilingBodyFile) throw new Error('the ceiling needs the response it answers (ceilingBodyFile)');
    const ceiling = await startCeiling(options.ceilingBodyFile, launch.logDir, tag);
    return { name, url: ceiling.url, process: ceiling.process, stop: () => ceiling.process.stop() };
  }
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/graphql`;
  let managed: Managed;
  if (name === 'ours' || name === 'base') {
    // `base` is the same gateway from another checkout (BENCH_BASE_DIR), with the same settings.
    const root = name === 'base' ? `${options.baseDir!.replace(/\/$/, '')}/` : repoRoot;
    const { cwd, args } = nodeArgs(launch, 'gateway', 'main', `gateway-${name}-${tag}`, root);
    const gc = options.gcOnSignal ? ['--expose-gc', '--import', gcOnSignalFile] : [];
    // Our subgraphs at the bench's URLs; the fixture subgraphs at those their supergraph names.
    const subgraphEnv: Record<string, string> = options.fixtures
      ? {
          SUPERGRAPH_PATH: options.supergraphPath,
          USERS_JWKS_URL: new URL('/.well-known/jwks.json', backend.urls.users).href,
        }
      : {
          USERS_SUBGRAPH_URL: backend.urls.users,
          MEALS_SUBGRAPH_URL: backend.urls.meals,
          ORDERS_SUBGRAPH_URL: backend.urls.orders,
          PAYMENTS_SUBGRAPH_URL: backend.urls.payments,
        };
    managed = start({
      name: `gateway-${name}-${tag}`,
      command: process.execPath,
      args: [...gc, ...args],
      cwd,
      openFiles: options.openFiles,
      logDir: launch.logDir,
      env: {
        ...baseEnv(),
        ...launch.env,
        ...options.oursEnv,
        GATEWAY_PORT: String(port),
        ...subgraphEnv,
      },
    });
  } else if (name === 'hive' || name === 'hive-router') {
    managed = start({
      name: `gateway-${name}-${tag}`,
      command: process.execPath,
      args: [hiveBin(), 'supergraph', options.supergraphPath, '--port', String(port), '--host', '127.0.0.1'],
      cwd: peersDir, // where its gateway.config.ts is
      logDir: launch.logDir,
      // hive-router: its documented switch to the Rust query planner and its executor (router-runtime).
      env: {
        ...baseEnv(),
        NODE_ENV: 'production',
        ...(name === 'hive-router' && { HIVE_ROUTER_RUNTIME: 'true' }),
        ...(options.peerCache && { BENCH_PEER_CACHE: '1' }),
      },
    });
  } else {
    managed = start({
      name: `gateway-apollo-${tag}`,
      command: process.execPath,
      args: [`${peersDir}apollo-stock.mjs`],
      cwd: peersDir,
      logDir: launch.logDir,
      env: {
        ...baseEnv(),
        NODE_ENV: 'production',
        PORT: String(port),
        SUPERGRAPH_PATH: options.supergraphPath,
        ...(options.peerCache && { BENCH_PEER_CACHE: '1' }),
      },
    });
  }
  await waitUntil(`${name} gateway`, graphqlReady(url), managed, 90_000);
  return { name, url, process: managed, stop: () => managed.stop() };
}
