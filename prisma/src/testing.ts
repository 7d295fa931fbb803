import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrateDeploy, type DatabaseService } from './index.js';

/**
 * A fresh, migrated database for one test file on the machine's real Postgres, dropped afterwards.
 * Tests never share a database. The server is `TEST_POSTGRES_URL` (default: local trust auth).
 */
export async function createTestDatabase(service: DatabaseService): Promise<{ url: string; drop(): Promise<void> }> {
  const adminUrl = process.env.TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
  const name = `test_${service}_${randomBytes(6).toString('hex')}`;
  await withAdmin(adminUrl, (client) => client.query(`CREATE DATABASE "${name}"`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  await migrateDeploy(service, url.toString());
  return {
    url: url.toString(),
    drop: () =>
      withAdmin(adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(
        () => undefined,
      ),
  };
}

async function withAdmin<T>(adminUrl: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}
