import { createLogger, loadSchemaFile, startSubgraph, type Logger } from '@food/platform';
import type { MealsConfig } from './config.js';
import { createContext } from './context.js';
import { PrismaMealsStore } from './data/meals-store.js';
import { connectMealsDatabase } from './data/prisma.js';
import { MealsService } from './domain/meals.js';
import { resolvers } from './resolvers/index.js';

export const mealsTypeDefs = loadSchemaFile(new URL('../schema.graphql', import.meta.url));

/** Wires the meals subgraph from its configuration: database and domain. */
export function createMealsService(config: MealsConfig) {
  const prisma = connectMealsDatabase(config.MEALS_DATABASE_URL, undefined, {
    replicaUrls: config.MEALS_DATABASE_REPLICA_URLS,
    maxLagSeconds: config.DATABASE_REPLICA_MAX_LAG_SECONDS,
  });
  const meals = new MealsService(new PrismaMealsStore(prisma), { currency: config.MEALS_CURRENCY });
  return { prisma, meals };
}

/** Starts the meals subgraph over HTTP. `close()` stops it and its database pool. */
export async function startMealsSubgraph(
  config: MealsConfig,
  logger: Logger = createLogger('meals', config.LOG_LEVEL),
) {
  const { prisma, meals } = createMealsService(config);
  return startSubgraph({
    name: 'meals',
    logger,
    typeDefs: mealsTypeDefs,
    resolvers,
    internalTokenSecret: config.INTERNAL_TOKEN_SECRET,
    context: (caller) => createContext(caller, meals),
    database: prisma,
    port: config.MEALS_PORT,
    host: config.HOST,
    nodeEnv: config.NODE_ENV,
  });
}
