import { fileURLToPath } from 'node:url';
import { defineConfig } from 'prisma/config';
import { PrismaPg } from '@prisma/adapter-pg';

/**
 * The Prisma CLI configuration for one service's database. It uses the JavaScript schema engine over
 * the `pg` driver adapter, so `migrate deploy` and `generate` need no engine download.
 *
 * The adapter gets discrete connection fields rather than a connection string: `migrate dev` derives
 * its shadow database from them, and a connection string would point it back at the main database.
 */
export function defineServiceConfig(service: string) {
  const dir = fileURLToPath(new URL(`../${service}/`, import.meta.url));
  return defineConfig({
    experimental: { adapter: true },
    engine: 'js',
    schema: `${dir}schema.prisma`,
    migrations: { path: `${dir}migrations` },
    adapter: async () => new PrismaPg(connectionFields(process.env.DATABASE_URL)),
  });
}

function connectionFields(databaseUrl: string | undefined) {
  if (!databaseUrl) throw new Error('DATABASE_URL is required to run a migration');
  const url = new URL(databaseUrl);
  return {
    host: url.hostname,
    port: Number(url.port || 5432),
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    database: url.pathname.slice(1),
    // The CLI exits only once the pool is empty; the default 10 s idle timeout would hold it that long.
    idleTimeoutMillis: 50,
  };
}
