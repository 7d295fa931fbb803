import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { startSupergraph, type RunningSupergraph } from '@food/devstack';
import { testSecrets } from '@food/platform/testing';
import { databaseServices, type DatabaseService } from '@food/prisma';
import { createTestDatabase } from '@food/prisma/testing';

export interface GraphQLResponse<T = any> {
  status: number;
  headers: Headers;
  data?: T;
  errors?: { message: string; path?: (string | number)[]; extensions?: Record<string, unknown> }[];
}

/** The four subgraphs and the gateway as real HTTP servers on fresh databases of the real Postgres. */
export async function startTestSupergraph() {
  const databases = await Promise.all(databaseServices.map((service) => createTestDatabase(service)));
  const databaseUrls = Object.fromEntries(databaseServices.map((service, i) => [service, databases[i]!.url])) as Record<
    DatabaseService,
    string
  >;
  let supergraph: RunningSupergraph;
  try {
    supergraph = await startSupergraph({
      databaseUrls,
      env: {
        ...testSecrets,
        USERS_ENCRYPTION_KEYS: `e2e:${Buffer.alloc(32, 7).toString('base64')}`,
        USERS_ENCRYPTION_ACTIVE_KEY_ID: 'e2e',
        LOG_LEVEL: 'silent',
        REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      },
      redisKeyPrefix: `e2e-${randomUUID()}`,
      ports: { gateway: 0, users: 0, meals: 0, orders: 0, payments: 0 },
      seed: true,
    });
  } catch (error) {
    await Promise.all(databases.map((database) => database.drop()));
    throw error;
  }
  const pools = Object.fromEntries(
    databaseServices.map((service) => [service, new pg.Pool({ connectionString: databaseUrls[service], max: 2 })]),
  ) as Record<DatabaseService, pg.Pool>;

  return {
    supergraph,
    /** A POST to the gateway, as a frontend would send it. */
    async gateway<T = any>(
      query: string,
      variables: Record<string, unknown> = {},
      headers: Record<string, string> = {},
    ): Promise<GraphQLResponse<T>> {
      return post<T>(supergraph.gatewayUrl, { query, variables }, headers);
    },
    post,
    /** Row counts straight from a service's database, to prove what was (not) written. */
    async count(service: DatabaseService, table: string): Promise<number> {
      const result = await pools[service].query(`SELECT count(*)::int AS n FROM "${table}"`);
      return result.rows[0].n as number;
    },
    async stop() {
      await supergraph.stop();
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
