import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { startSupergraph, type RunningSupergraph } from '@food/devstack';
import type { RedisTarget } from '@food/platform';
import { deleteKeys, redisEnvOf, testRedisTarget, testSecrets } from '@food/platform/testing';
import { databaseServices, type DatabaseService } from '@food/prisma';
import { createTestDatabase } from '@food/prisma/testing';

export interface GraphQLResponse<T = any> {
  status: number;
  headers: Headers;
  data?: T;
  errors?: { message: string; path?: (string | number)[]; extensions?: Record<string, unknown> }[];
}

export interface TestSupergraphOptions {
  /** Run the workers in the test process (default); false leaves them to `startServiceProcess`. */
  workers?: boolean;
  /** Default: the suite's Redis (`testRedisTarget()`: the run's cluster in cluster mode, else REDIS_URL or the machine's). */
  redis?: RedisTarget;
  /** A service's database elsewhere (e.g. a primary with replicas of the test's own); default: a fresh one on the real Postgres. */
  databaseUrls?: Partial<Record<DatabaseService, string>>;
  /** More environment for every service and the gateway (e.g. `ORDERS_DATABASE_REPLICA_URLS`). */
  env?: Record<string, string>;
}

/** The four subgraphs and the gateway as real HTTP servers on fresh databases of the real Postgres. */
export async function startTestSupergraph(options: TestSupergraphOptions = {}) {
  const redis = options.redis ?? testRedisTarget();
  const own = databaseServices.filter((service) => !options.databaseUrls?.[service]);
  const databases = await Promise.all(own.map((service) => createTestDatabase(service)));
  const databaseUrls = {
    ...options.databaseUrls,
    ...Object.fromEntries(own.map((service, i) => [service, databases[i]!.url])),
  } as Record<DatabaseService, string>;
  const env = {
    ...testSecrets,
    // Personal data at rest: each service its own keys, and the email's blind index key.
    USERS_ENCRYPTION_KEYS: `e2e:${Buffer.alloc(32, 7).toString('base64')}`,
    USERS_ENCRYPTION_ACTIVE_KEY_ID: 'e2e',
    USERS_BLIND_INDEX_KEY: Buffer.alloc(32, 8).toString('base64'),
    ORDERS_ENCRYPTION_KEYS: `e2e:${Buffer.alloc(32, 9).toString('base64')}`,
    ORDERS_ENCRYPTION_ACTIVE_KEY_ID: 'e2e',
    LOG_LEVEL: process.env.E2E_LOG_LEVEL ?? 'silent',
    ...redisEnvOf(redis),
    // Every run has its own streams and queues on the shared Redis.
    REDIS_KEY_PREFIX: `e2e-${randomUUID()}`,
    // Every test client is one address (127.0.0.1) and a few users doing the work of many; the edge
    // tests set tight budgets of their own.
    ...Object.fromEntries(
      ['USER', 'IP'].flatMap((scope) =>
        ['QUERIES', 'MUTATIONS', 'SUBSCRIPTIONS'].map((kind) => [`RATE_LIMIT_${scope}_${kind}`, '100000']),
      ),
    ),
    ...options.env,
  };
  let supergraph: RunningSupergraph;
  try {
    supergraph = await startSupergraph({
      databaseUrls,
      env,
      ports: { gateway: 0, users: 0, meals: 0, orders: 0, payments: 0 },
      seed: true,
      workers: options.workers,
    });
  } catch (error) {
    await Promise.all(databases.map((database) => database.drop()));
    throw error;
  }
  const pools = Object.fromEntries(
    databaseServices.map((service) => [service, new pg.Pool({ connectionString: databaseUrls[service], max: 2 })]),
  ) as Record<DatabaseService, pg.Pool>;

  const { users, meals, orders, payments } = supergraph.subgraphUrls;
  return {
    supergraph,
    /**
     * The environment a service's own process needs to join this supergraph (databases, subgraph
     * URLs, secrets, Redis and its key prefix), as a deployment would give it.
     */
    processEnv: {
      ...env,
      USERS_DATABASE_URL: databaseUrls.users,
      MEALS_DATABASE_URL: databaseUrls.meals,
      ORDERS_DATABASE_URL: databaseUrls.orders,
      PAYMENTS_DATABASE_URL: databaseUrls.payments,
      USERS_SUBGRAPH_URL: users,
      MEALS_SUBGRAPH_URL: meals,
      ORDERS_SUBGRAPH_URL: orders,
      PAYMENTS_SUBGRAPH_URL: payments,
    } as Record<string, string>,
    /** A POST to the gateway, as a frontend would send it. */
    async gateway<T = any>(
      query: string,
      variables: Record<string, unknown> = {},
      headers: Record<string, string> = {},
    ): Promise<GraphQLResponse<T>> {
      return post<T>(supergraph.gatewayUrl, { query, variables }, headers);
    },
    post,
    /** A query straight against a service's database, to prove what was (not) written. */
    async query(service: DatabaseService, sql: string, params: unknown[] = []): Promise<any[]> {
      return (await pools[service].query(sql, params)).rows;
    },
    /** Row counts straight from a service's database, to prove what was (not) written. */
    async count(service: DatabaseService, table: string): Promise<number> {
      const result = await pools[service].query(`SELECT count(*)::int AS n FROM "${table}"`);
      return result.rows[0].n as number;
    },
    async stop() {
      await supergraph.stop();
      // This run's streams and queues; the Redis is shared (a test's own redis-server may be gone already).
      await deleteKeys(env.REDIS_KEY_PREFIX, redis).catch(() => undefined);
      await Promise.all(Object.values(pools).map((pool) => pool.end()));
      await Promise.all(databases.map((database) => database.drop()));
    },
  };
}

async function post<T>(url: string, body: unknown, headers: Record<string, string> = {}): Promise<GraphQLResponse<T>> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: { data?: T; errors?: GraphQLResponse['errors'] } = {};
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = { errors: [{ message: text }] };
  }
  return { status: response.status, headers: response.headers, ...parsed };
}

export const codes = (response: GraphQLResponse) => (response.errors ?? []).map((error) => error.extensions?.code);
