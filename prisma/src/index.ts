import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** The services that own a database, each with `prisma/<service>/{schema.prisma,migrations/}`. */
export const databaseServices = ['users', 'meals', 'orders', 'payments'] as const;
export type DatabaseService = (typeof databaseServices)[number];

const prismaCli = createRequire(import.meta.url).resolve('prisma/build/index.js');
const unrefEngineTimers = fileURLToPath(new URL('./unref-engine-timers.cjs', import.meta.url));
const configOf = (service: DatabaseService) =>
  fileURLToPath(new URL(`../${service}/prisma.config.ts`, import.meta.url));

/**
 * Applies the committed migrations of one service to a database, offline (`prisma migrate deploy`).
 * `migrationsDir`: another folder of migrations instead (a test applying only the first ones).
 */
export function migrateDeploy(
  service: DatabaseService,
  databaseUrl: string,
  { migrationsDir }: { migrationsDir?: string } = {},
): Promise<string> {
  return runPrisma(
    ['migrate', 'deploy', '--config', configOf(service)],
    databaseUrl,
    migrationsDir ? { PRISMA_MIGRATIONS_DIR: migrationsDir } : {},
  );
}

/** The folder of one service's committed migrations. */
export const migrationsDirOf = (service: DatabaseService) =>
  fileURLToPath(new URL(`../${service}/migrations`, import.meta.url));

/** Generates one service's Prisma client into its subgraph's `src/data/generated/prisma`. */
export function generateClient(service: DatabaseService): Promise<string> {
  // `generate` reads no database, but the schema's datasource still names DATABASE_URL.
  return runPrisma(['generate', '--config', configOf(service)], 'postgresql://unused@127.0.0.1/unused');
}

function runPrisma(args: string[], databaseUrl: string, env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--require', unrefEngineTimers, prismaCli, ...args], {
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl,
        PRISMA_HIDE_UPDATE_MESSAGE: '1',
        CHECKPOINT_DISABLE: '1',
        PRISMA_DISABLE_WARNINGS: '1',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(output);
      else reject(new Error(`prisma ${args.slice(0, 2).join(' ')} failed (exit ${code}):\n${output}`));
    });
  });
}
