import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { benchDir, type TargetName, type WorkloadName } from './config.js';
import type { LoadResult, LoadSpec } from './load-client.js';
import { CpuWindow, sampleRss, start, type CpuGroups } from './procs.js';
import type { RunningTarget } from './targets.js';
import { OVERHEAD_QUERY } from './overhead/index.js';

export type HttpWorkload = Exclude<WorkloadName, 'subscriptions'>;

export const MENU = `query Menu { meals(first: 20) { edges { node { id name description price { amount currency } available } } pageInfo { hasNextPage endCursor } } }`;
export const MY_ORDERS = `query MyOrders { me { orders(first: 10) { edges { node { id status total { amount currency } createdAt customer { name } items { quantity meal { name } } payment { status } } } } } }`;

/**
 * Which targets run which workload: the meals subgraph alone is the ceiling of the one-subgraph query
 * only, and the plain HTTP server that of gateway-overhead only.
 */
export const appliesTo = (workload: HttpWorkload, target: TargetName) =>
  target === 'direct' ? workload === 'one-subgraph' : target === 'ceiling' ? workload === 'gateway-overhead' : true;

/** Workloads that run on the fixture subgraphs of overhead/, not on ours. */
export const onFixtures = (workload: HttpWorkload) => workload === 'gateway-overhead';

const isOurs = (target: TargetName) => target === 'ours' || target === 'base';

/** Who the bench is: real JWTs from logIn for our gateway; static internal tokens for the peers. */
export interface Identities {
  /** Per customer: the JWT our gateway gets, and the internal token the peers pass on. */
  federated: { jwt: string; internalToken: string }[];
  /** federated-cold: thousands of customers, one per request (tokens minted with the run's keys). */
  cold: { jwt: string; internalToken: string }[];
  mutations: { jwt: string; internalToken: string }[];
  anonymousInternalToken: string;
  mealIds: string[];
}

export function loadSpec(
  workload: HttpWorkload,
  target: RunningTarget,
  ids: Identities,
  settings: { connections: number; warmupSeconds: number; durationSeconds: number },
): LoadSpec {
  const asTarget = (identity: { jwt: string; internalToken: string }): Record<string, string> =>
    isOurs(target.name) ? { authorization: `Bearer ${identity.jwt}` } : { 'x-internal-token': identity.internalToken };
  const base = { url: target.url, ...settings };
  if (workload === 'gateway-overhead') {
    // Anonymous: the fixture subgraphs take no token, and every target sends the same request.
    return { ...base, kind: 'query', body: JSON.stringify({ query: OVERHEAD_QUERY }), identities: [{}] };
  }
  if (workload === 'one-subgraph') {
    // Anonymous, as the menu is read: no header for ours, the anonymous internal token otherwise.
    const identities = isOurs(target.name) ? [{}] : [{ 'x-internal-token': ids.anonymousInternalToken }];
    return { ...base, kind: 'query', body: JSON.stringify({ query: MENU }), identities };
  }
  if (workload === 'federated' || workload === 'federated-cold') {
    return {
      ...base,
      kind: 'query',
      body: JSON.stringify({ query: MY_ORDERS }),
      identities: (workload === 'federated' ? ids.federated : ids.cold).map(asTarget),
    };
  }
  return { ...base, kind: 'mutations', identities: ids.mutations.map(asTarget), mealIds: ids.mealIds };
}

/** One request of the workload before the load: a target that answers it wrongly is not measured. */
export async function verify(spec: LoadSpec): Promise<string | undefined> {
  const post = async (body: unknown) => {
    const response = await fetch(spec.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...spec.identities[(spec.firstIdentity ?? 0) % spec.identities.length],
      },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    if (!response.ok || text.includes('"errors"')) throw new Error(`${response.status} ${text.slice(0, 500)}`);
    return JSON.parse(text) as { data: any }; // eslint-disable-line @typescript-eslint/no-explicit-any
  };
  try {
    if (spec.kind === 'query') {
      const { data } = await post(JSON.parse(spec.body!));
      if ('topProducts' in data) {
        if (data.users?.length !== 6 || data.topProducts?.length !== 5)
          return `expected 6 users and 5 products, got ${JSON.stringify(data).slice(0, 300)}`;
        if (data.topProducts[0].shippingEstimate === null) return 'no shippingEstimate (@requires) in the answer';
        return undefined;
      }
      if (data.meals && data.meals.edges.length !== 20) return `expected 20 meals, got ${data.meals.edges.length}`;
      if ('me' in data) {
        const orders = data.me?.orders?.edges ?? [];
        if (orders.length === 0) return `no orders for the customer: ${JSON.stringify(data)}`;
        const node = orders[0].node;
        if (!node.customer?.name || !node.items?.[0]?.meal?.name) return `incomplete order: ${JSON.stringify(node)}`;
      }
      return undefined;
    }
    const placed = await post({
      query: `mutation ($input: PlaceOrderInput!) { placeOrder(input: $input) { id } }`,
      variables: {
        input: {
          deliveryAddress: '1 Benchmark Street, Berlin',
          items: [{ mealId: spec.mealIds![0], quantity: 1 }],
          idempotencyKey: `bench-${randomUUID()}`,
        },
      },
    });
    const paid = await post({
      query: `mutation ($input: PayForOrderInput!) { payForOrder(input: $input) { status } }`,
      variables: {
        input: {
          orderId: placed.data.placeOrder.id,
          paymentToken: 'tok_sandbox_success',
          idempotencyKey: `bench-${randomUUID()}`,
        },
      },
    });
    if (paid.data.payForOrder.status !== 'SUCCEEDED') return `payment ${paid.data.payForOrder.status}`;
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

export interface Measured {
  result: LoadResult;
  /** Requests each subgraph served during the measured window (its graphql_requests_total). */
  subgraphRequests: Record<string, number>;
  /** % of one core over the measured window, per process group. */
  cpu: Record<string, number>;
  /** Peak RSS of the target's gateway process during the measured window (bytes; 0 for direct). */
  gatewayPeakRss: number;
  /** Ours: its entity cache's hits and misses during the measured window, by entity type. */
  entityCache?: EntityCacheCounts;
}

export type EntityCacheCounts = Record<string, { hits: number; misses: number }>;

const loadClientFile = fileURLToPath(new URL('./load-client.ts', import.meta.url));

/** Runs the load client as its own process and measures the servers while it runs. */
export async function measure(
  spec: LoadSpec,
  target: RunningTarget,
  cpuGroups: (loadClientPid: number) => CpuGroups,
  subgraphUrls: Record<string, string>,
  logDir: string,
): Promise<Measured> {
  const client = start({
    name: 'load-client',
    command: process.execPath,
    args: ['--import', 'tsx', loadClientFile],
    cwd: benchDir,
    env: { PATH: process.env.PATH ?? '' },
    logDir,
    ipc: true,
    openFiles: spec.connections + 256,
  });
  const child = client.child;
  let window: CpuWindow | undefined;
  let rss: { stop(): number } | undefined;
  let countsBefore: Promise<Record<string, number>> = Promise.resolve({});
  const counting = isOurs(target.name);
  let cacheBefore: Promise<EntityCacheCounts> = Promise.resolve({});
  let answered = false;
  try {
    return await new Promise<Measured>((resolve, reject) => {
      child.on('message', (message: { type: string; result?: LoadResult; error?: string }) => {
        if (message.type === 'measuring') {
          window = new CpuWindow(cpuGroups(client.pid));
          if (target.process) rss = sampleRss(target.process.pid);
          countsBefore = requestCounts(subgraphUrls);
          if (counting) cacheBefore = entityCacheCounts(target.url);
        } else if (message.type === 'result') {
          answered = true;
          const cpu = window?.finish() ?? {};
          const gatewayPeakRss = rss?.stop() ?? 0;
          void Promise.all([
            countsBefore,
            requestCounts(subgraphUrls),
            cacheBefore,
            counting ? entityCacheCounts(target.url) : undefined,
          ]).then(([before, after, cacheStart, cacheEnd]) => {
            const subgraphRequests = Object.fromEntries(
              Object.keys(after).map((name) => [name, (after[name] ?? 0) - (before[name] ?? 0)]),
            );
            const entityCache =
              cacheEnd &&
              Object.fromEntries(
                Object.entries(cacheEnd).map(([type, end]) => {
                  const start = cacheStart[type] ?? { hits: 0, misses: 0 };
                  return [type, { hits: end.hits - start.hits, misses: end.misses - start.misses }];
                }),
              );
            resolve({ result: message.result!, cpu, gatewayPeakRss, subgraphRequests, entityCache });
          }, reject);
        } else if (message.type === 'failed') {
          reject(new Error(`load client failed: ${message.error}`));
        }
      });
      void client.exited.then((code) => {
        if (!answered) reject(new Error(`load client exited (${code})\n${client.logs()}`));
      });
      child.send({ spec });
    });
  } finally {
    rss?.stop();
    await client.stop();
  }
}

/** What the report calls our response cache's counts, beside the entity cache's types. */
export const WHOLE_RESPONSES = 'whole responses';

/**
 * Our gateway's gateway_entity_cache_{hits,misses}_total by entity type, and its response cache's
 * gateway_response_cache_{hits,misses}_total (summed over scopes) as WHOLE_RESPONSES.
 */
async function entityCacheCounts(gatewayUrl: string): Promise<EntityCacheCounts> {
  const text = await (await fetch(new URL('/metrics', gatewayUrl))).text();
  const counts: EntityCacheCounts = {};
  for (const line of text.split('\n')) {
    const entity = /^gateway_entity_cache_(hits|misses)_total\{type="([^"]+)"\} (\S+)$/.exec(line);
    const whole = /^gateway_response_cache_(hits|misses)_total(?:\{[^}]*\})? (\S+)$/.exec(line);
    if (entity) {
      const entry = (counts[entity[2]!] ??= { hits: 0, misses: 0 });
      entry[entity[1] as 'hits' | 'misses'] += Number(entity[3]);
    } else if (whole) {
      const entry = (counts[WHOLE_RESPONSES] ??= { hits: 0, misses: 0 });
      entry[whole[1] as 'hits' | 'misses'] += Number(whole[2]);
    }
  }
  return counts;
}

/** Each subgraph's graphql_requests_total (summed over its labels). */
async function requestCounts(subgraphUrls: Record<string, string>): Promise<Record<string, number>> {
  const entries = await Promise.all(
    Object.entries(subgraphUrls).map(async ([name, url]) => {
      const text = await (await fetch(new URL('/metrics', url))).text();
      const total = text
        .split('\n')
        .filter((line) => line.startsWith('graphql_requests_total'))
        .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
      return [name, total] as const;
    }),
  );
  return Object.fromEntries(entries);
}
