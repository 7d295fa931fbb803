import {
  createLogger,
  InternalTokens,
  loadSchemaFile,
  ServiceClient,
  startSubgraph,
  type Logger,
} from '@food/platform';
import type { PaymentsConfig } from './config.js';
import { createContext } from './context.js';
import { OrdersLookupClient } from './data/orders-lookup-client.js';
import { PrismaPaymentsStore } from './data/payments-store.js';
import { connectPaymentsDatabase, type PaymentsPrisma } from './data/prisma.js';
import type { PaymentProvider } from './domain/payment-provider.js';
import { PaymentsService, type OrderLookup } from './domain/payments.js';
import { SandboxPaymentProvider } from './domain/sandbox-provider.js';
import { resolvers } from './resolvers/index.js';

export const paymentsTypeDefs = loadSchemaFile(new URL('../schema.graphql', import.meta.url));

/** What tests may replace: orders is another service, the provider another company. */
export interface PaymentsDependencies {
  prisma?: PaymentsPrisma;
  orders?: OrderLookup;
  provider?: PaymentProvider;
  logger?: Logger;
}

function providerFor(name: PaymentsConfig['PAYMENT_PROVIDER']): PaymentProvider {
  switch (name) {
    case 'sandbox':
      return new SandboxPaymentProvider();
  }
}

/** Wires the payments subgraph from its configuration: database, orders client, provider. */
export function createPaymentsService(config: PaymentsConfig, deps: PaymentsDependencies = {}) {
  const prisma =
    deps.prisma ??
    connectPaymentsDatabase(config.PAYMENTS_DATABASE_URL, undefined, {
      replicaUrls: config.PAYMENTS_DATABASE_REPLICA_URLS,
      maxLagSeconds: config.DATABASE_REPLICA_MAX_LAG_SECONDS,
    });
  const orders =
    deps.orders ??
    new OrdersLookupClient(
      new ServiceClient({
        caller: 'payments',
        url: config.ORDERS_SUBGRAPH_URL,
        tokens: new InternalTokens(config.INTERNAL_TOKEN_SECRET),
      }),
    );
  const payments = new PaymentsService(
    new PrismaPaymentsStore(prisma),
    orders,
    deps.provider ?? providerFor(config.PAYMENT_PROVIDER),
    (error) => deps.logger?.warn({ err: error }, 'payment provider threw; the payment is marked FAILED'),
  );
  return { prisma, payments };
}

/** Starts the payments subgraph over HTTP. `close()` stops it and its database pool. */
export async function startPaymentsSubgraph(
  config: PaymentsConfig,
  logger: Logger = createLogger('payments', config.LOG_LEVEL),
) {
  const { prisma, payments } = createPaymentsService(config, { logger });
  return startSubgraph({
    name: 'payments',
    logger,
    typeDefs: paymentsTypeDefs,
    resolvers,
    internalTokenSecret: config.INTERNAL_TOKEN_SECRET,
    context: (caller) => createContext(caller, payments),
    database: prisma,
    port: config.PAYMENTS_PORT,
    host: config.HOST,
    nodeEnv: config.NODE_ENV,
  });
}
