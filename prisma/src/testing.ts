import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { migrateDeploy, migrationsDirOf, type DatabaseService } from './index.js';

/**
 * A fresh, migrated database for one test file on the machine's real Postgres, dropped afterwards.
 * Tests never share a database. The server is `TEST_POSTGRES_URL` (default: local trust auth).
 */
export async function createTestDatabase(service: DatabaseService): Promise<{ url: string; drop(): Promise<void> }> {
  const adminUrl = process.env.TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
  const name = `test_${service}_${randomBytes(6).toString('hex')}`;
  await withPostgres(adminUrl, (client) => client.query(`CREATE DATABASE "${name}"`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  await migrateDeploy(service, url.toString());
  return {
    url: url.toString(),
    drop: () =>
      withPostgres(adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(
        () => undefined,
      ),
  };
}

/**
 * A fresh database (see `createTestDatabase`) migrated only up to and including the migration
 * `upTo`, for a test of what a later migration does to existing rows. `migrateRest()` then applies
 * the remaining committed migrations, as `migrate deploy` would on a database in production.
 */
export async function createTestDatabaseAt(
  service: DatabaseService,
  upTo: string,
): Promise<{ url: string; migrateRest(): Promise<string>; drop(): Promise<void> }> {
  const committed = migrationsDirOf(service);
  const names = await readdir(committed);
  if (!names.includes(upTo)) throw new Error(`no migration ${upTo} in ${committed}`);
  const dir = await mkdtemp(path.join(tmpdir(), `migrations-${service}-`));
  await cp(path.join(committed, 'migration_lock.toml'), path.join(dir, 'migration_lock.toml'));
  for (const name of names.filter((entry) => /^\d/.test(entry) && entry <= upTo).sort())
    await cp(path.join(committed, name), path.join(dir, name), { recursive: true });
  const adminUrl = process.env.TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
  const name = `test_${service}_${randomBytes(6).toString('hex')}`;
  await withPostgres(adminUrl, (client) => client.query(`CREATE DATABASE "${name}"`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const drop = async () => {
    await rm(dir, { recursive: true, force: true });
    await withPostgres(adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
  };
  try {
    await migrateDeploy(service, url.toString(), { migrationsDir: dir });
  } catch (error) {
    await drop();
    throw error;
  }
  return { url: url.toString(), migrateRest: () => migrateDeploy(service, url.toString()), drop };
}

/** One connection to a Postgres URL for `run`, closed afterwards (the admin work of tests and the bench). */
export async function withPostgres<T>(url: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

/** The log option of a test client: every query is emitted as an event. */
export type QueryEventLog = { readonly emit: 'event'; readonly level: 'query' }[];

/** What the helper needs of a service's generated PrismaClient. */
export interface QueryLoggingClient {
  $on(eventType: 'query', callback: (event: { query: string }) => void): unknown;
  $disconnect(): Promise<unknown>;
}

export interface TestDatabaseClient<Client> {
  url: string;
  prisma: Client;
  /** Every SQL statement the client sent, in order; a test may empty it to count its own. */
  sqlQueries: string[];
  /** Disconnects the client, then drops the database. */
  close(): Promise<void>;
}

/**
 * A fresh, migrated database (see `createTestDatabase`) and a client on it built with the
 * service's own PrismaClient and driver adapter classes, recording every query it sends.
 */
export async function createTestDatabaseClient<Adapter, Client extends QueryLoggingClient>(
  service: DatabaseService,
  PrismaClient: new (options: { adapter: Adapter; log: QueryEventLog }) => Client,
  PrismaPg: new (config: { connectionString: string }) => Adapter,
): Promise<TestDatabaseClient<Client>> {
  const database = await createTestDatabase(service);
  const sqlQueries: string[] = [];
  let prisma: Client;
  try {
    prisma = new PrismaClient({
      adapter: new PrismaPg({ connectionString: database.url }),
      log: [{ emit: 'event', level: 'query' }],
    });
  } catch (error) {
    await database.drop();
    throw error;
  }
  prisma.$on('query', (event) => sqlQueries.push(event.query));
  return {
    url: database.url,
    prisma,
    sqlQueries,
    close: async () => {
      await prisma.$disconnect();
      await database.drop();
    },
  };
}
