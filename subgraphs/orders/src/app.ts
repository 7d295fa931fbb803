import {
  createLogger,
  InternalTokens,
  loadSchemaFile,
  PersonalDataCipher,
  ServiceClient,
  startSubgraph,
  type Logger,
} from '@food/platform';
import type { OrdersConfig } from './config.js';
import { createContext } from './context.js';
import { MealsCatalogClient } from './data/meals-catalog-client.js';
import { PrismaOrdersStore } from './data/orders-store.js';
import { connectOrdersDatabase, type OrdersPrisma } from './data/prisma.js';
import { OrdersService, type MealCatalog } from './domain/orders.js';
import { resolvers } from './resolvers/index.js';

export const ordersTypeDefs = loadSchemaFile(new URL('../schema.graphql', import.meta.url));

/** What tests may replace: meals is another service. */
export interface OrdersDependencies {
  prisma?: OrdersPrisma;
  meals?: MealCatalog;
}

/** Wires the orders subgraph from its configuration: database, meals client, delivery fee. */
export function createOrdersService(config: OrdersConfig, deps: OrdersDependencies = {}) {
  const prisma =
    deps.prisma ??
    connectOrdersDatabase(config.ORDERS_DATABASE_URL, undefined, {
      replicaUrls: config.ORDERS_DATABASE_REPLICA_URLS,
      maxLagSeconds: config.DATABASE_REPLICA_MAX_LAG_SECONDS,
    });
  const meals =
    deps.meals ??
    new MealsCatalogClient(
      new ServiceClient({
        caller: 'orders',
        url: config.MEALS_SUBGRAPH_URL,
        tokens: new InternalTokens(config.INTERNAL_TOKEN_SECRET),
      }),
    );
  const orders = new OrdersService(new PrismaOrdersStore(prisma, ordersCipher(config)), meals, {
    deliveryFeeAmount: config.ORDERS_DELIVERY_FEE_MINOR,
  });
  return { prisma, orders };
}

/** The orders service's own cipher for the delivery address at rest (ORDERS_ENCRYPTION_KEYS). */
export function ordersCipher(config: OrdersConfig): PersonalDataCipher {
  return new PersonalDataCipher(config.ORDERS_ENCRYPTION_KEYS, config.ORDERS_ENCRYPTION_ACTIVE_KEY_ID);
}

/** Starts the orders subgraph over HTTP. `close()` stops it and its database pool. */
export async function startOrdersSubgraph(
  config: OrdersConfig,
  logger: Logger = createLogger('orders', config.LOG_LEVEL),
) {
  const { prisma, orders } = createOrdersService(config);
  return startSubgraph({
    name: 'orders',
    logger,
    typeDefs: ordersTypeDefs,
    resolvers,
    internalTokenSecret: config.INTERNAL_TOKEN_SECRET,
    context: (caller) => createContext(caller, orders),
    database: prisma,
    port: config.ORDERS_PORT,
    host: config.HOST,
    nodeEnv: config.NODE_ENV,
  });
}
