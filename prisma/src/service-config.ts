import { fileURLToPath } from 'node:url';
import { defineConfig } from 'prisma/config';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';

/**
 * The schema engine describes a database with catalog queries that, once a table is partitioned
 * (the orders database), return a column of Postgres's one-byte type `"char"` (OID 18,
 * `pg_partitioned_table.partstrat`), which `@prisma/adapter-pg` 7.10 cannot map ("Column type 'char'
 * could not be deserialized"): `migrate diff` and `migrate dev` would fail. Its text form is the
 * character itself, so the CLI's driver reports such columns as `text`. This module is loaded only by
 * the Prisma CLI (through prisma.config.ts), never by a service.
 */
const CHAR_OID = 18;
const TEXT_OID = 25;
/** `Result.addFields` is what the driver calls with a result's column descriptions (not in its types). */
const resultPrototype = pg.Result.prototype as unknown as { addFields(fields: pg.FieldDef[]): void };
const addFields = resultPrototype.addFields;
resultPrototype.addFields = function (this: unknown, fields: pg.FieldDef[]) {
  for (const field of fields) if (field.dataTypeID === CHAR_OID) field.dataTypeID = TEXT_OID;
  addFields.call(this, fields);
};

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
    // PRISMA_MIGRATIONS_DIR: a copy holding the first migrations only, for a test of a later one
    // (set by `migrateDeploy`'s `migrationsDir`, see testing.ts). Otherwise the committed folder.
    migrations: { path: process.env.PRISMA_MIGRATIONS_DIR ?? `${dir}migrations` },
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
