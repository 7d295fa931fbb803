import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { ConfigError, describeRedisTarget, loadConfig, port, runMain } from '@food/platform';
import { databaseServices, type DatabaseService } from '@food/prisma';
import { demoUsers } from '@food/users-subgraph';
import { loadOrCreateDevSecrets } from './dev-secrets.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './embedded-postgres.js';
import { redisTargetIn, startSupergraph } from './supergraph.js';

/**
 * `pnpm start`: the whole supergraph on this machine. Each service uses `<SERVICE>_DATABASE_URL` when
 * set, else an embedded Postgres (PGlite) with its data under `.data/pglite/<service>`.
 */
const dataDir = process.env.DEV_DATA_DIR ?? fileURLToPath(new URL('../../../.data/', import.meta.url));

const DevPortsSchema = z
  .object({
    GATEWAY_PORT: port(4000),
    USERS_PORT: port(4001),
    MEALS_PORT: port(4002),
    ORDERS_PORT: port(4003),
    PAYMENTS_PORT: port(4004),
  })
  .transform((env) => ({
    gateway: env.GATEWAY_PORT,
    users: env.USERS_PORT,
    meals: env.MEALS_PORT,
    orders: env.ORDERS_PORT,
    payments: env.PAYMENTS_PORT,
  }));

runMain(async () => {
  const started = Date.now();
  const ports = loadConfig('start', DevPortsSchema);
  const embedded: EmbeddedPostgres[] = [];
  const databaseUrls = {} as Record<DatabaseService, string>;
  const sources: string[] = [];
  for (const service of databaseServices) {
    const configured = process.env[`${service.toUpperCase()}_DATABASE_URL`];
    if (configured) {
      databaseUrls[service] = configured;
      sources.push(`${service}: ${redactPassword(configured)}`);
    } else {
      const postgres = await startEmbeddedPostgres(`${dataDir}pglite/${service}`);
      embedded.push(postgres);
      databaseUrls[service] = postgres.url;
      sources.push(`${service}: embedded PGlite (${dataDir}pglite/${service})`);
    }
  }
  const stopEmbedded = () => Promise.all(embedded.map((postgres) => postgres.stop()));

  const secrets = loadOrCreateDevSecrets(`${dataDir}dev-secrets.json`);
  let supergraph;
  try {
    supergraph = await startSupergraph({
      databaseUrls,
      env: { LOG_LEVEL: 'warn', ...secrets, ...process.env },
      ports,
      seed: process.env.NODE_ENV !== 'production',
    });
  } catch (error) {
    await stopEmbedded();
    throw error;
  }

  const demo = demoUsers.map((user) => `    ${user.role.padEnd(8)} ${user.email} / ${user.password}`).join('\n');
  process.stdout.write(
    [
      '',
      `  Supergraph ready in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      '',
      `  Gateway:   ${supergraph.gatewayUrl}`,
      ...Object.entries(supergraph.subgraphUrls).map(([name, url]) => `  ${name.padEnd(10)} ${url}`),
      '',
      '  Databases:',
      ...sources.map((source) => `    ${source}`),
      '',
      `  Events and jobs: ${
        supergraph.messaging.mode === 'redis'
          ? describeRedisTarget(redisTargetIn(process.env)!)
          : 'in-process stand-ins (no REDIS_URL or REDIS_CLUSTER_NODES set: run only this one process)'
      }`,
      '',
      '  Demo accounts (email / password):',
      demo,
      '',
      '  Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );

  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('\nstopping...\n');
    await supergraph.stop();
    await stopEmbedded();
    process.stdout.write('stopped\n');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown());
  process.on('SIGTERM', () => void shutdown());
});

function redactPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    throw new ConfigError('a <SERVICE>_DATABASE_URL is not a valid URL');
  }
}
