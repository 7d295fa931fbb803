import { startGateway, loadGatewayConfig, type RunningGateway } from '@food/gateway';
import { loadMealsConfig, seedMeals, startMealsSubgraph, startMealsWorker } from '@food/meals-subgraph';
import { loadOrdersConfig, startOrdersSubgraph, startOrdersWorker } from '@food/orders-subgraph';
import { loadPaymentsConfig, startPaymentsSubgraph, startPaymentsWorker } from '@food/payments-subgraph';
import { z } from 'zod';
import {
  createLogger,
  createMessaging,
  loadConfig,
  oneRedisMode,
  redisEnv,
  redisTargetOf,
  type Messaging,
  type RedisTarget,
} from '@food/platform';
import { databaseServices, migrateDeploy, type DatabaseService } from '@food/prisma';
import { loadUsersConfig, seedUsers, startUsersSubgraph, startUsersWorker } from '@food/users-subgraph';

type Env = Record<string, string | undefined>;

export interface SupergraphOptions {
  /** One database per service; nothing is shared. */
  databaseUrls: Record<DatabaseService, string>;
  /** Base environment for every service (secrets, log level, REDIS_URL or REDIS_CLUSTER_NODES, REDIS_KEY_PREFIX, overrides). */
  env: Env;
  /** Ports to listen on; 0 picks a free one. Defaults: gateway 4000, subgraphs 4001-4004. */
  ports?: Partial<Record<'gateway' | DatabaseService, number>>;
  /** Load the demo menu and demo users. */
  seed: boolean;
  /**
   * Run the users, meals, orders and payments workers in this process (default true). Tests that kill and
   * restart workers run them as their own processes instead, as production does.
   */
  workers?: boolean;
}

export interface RunningSupergraph {
  gatewayUrl: string;
  subgraphUrls: Record<DatabaseService, string>;
  gateway: RunningGateway;
  /** Events and jobs: Redis when `env` names one (REDIS_URL or REDIS_CLUSTER_NODES), else in-process stand-ins. */
  messaging: Messaging;
  stop(): Promise<void>;
}

const defaultPorts = { gateway: 4000, users: 4001, meals: 4002, orders: 4003, payments: 4004 };

/**
 * Brings up the whole supergraph in this process: migrations, optional demo data, the four subgraphs
 * (each on its own database) and the gateway in front of them. Used by the dev start command and by
 * the end-to-end tests, so both run exactly the same wiring as production's separate processes.
 */
export async function startSupergraph(options: SupergraphOptions): Promise<RunningSupergraph> {
  const ports = { ...defaultPorts, ...options.ports };
  await Promise.all(databaseServices.map((service) => migrateDeploy(service, options.databaseUrls[service])));

  const env = (extra: Env): Env => ({ ...options.env, ...extra });
  const usersConfig = loadUsersConfig(
    env({ USERS_DATABASE_URL: options.databaseUrls.users, USERS_PORT: String(ports.users) }),
  );
  const mealsConfig = loadMealsConfig(
    env({ MEALS_DATABASE_URL: options.databaseUrls.meals, MEALS_PORT: String(ports.meals) }),
  );
  if (options.seed) await Promise.all([seedUsers(usersConfig), seedMeals(mealsConfig)]);

  const logLevel = (options.env.LOG_LEVEL ?? 'info') as Parameters<typeof createLogger>[1];
  const messaging = createMessaging({
    redis: redisTargetIn(options.env),
    logger: createLogger('messaging', logLevel),
    keyPrefix: options.env.REDIS_KEY_PREFIX,
    redeliverAfterMs: options.env.REDIS_REDELIVER_AFTER_MS ? Number(options.env.REDIS_REDELIVER_AFTER_MS) : undefined,
  });
  const stack: { close(): Promise<void> }[] = [messaging];
  const stop = async () => {
    for (const service of stack.reverse()) await service.close();
  };
  try {
    const users = await startUsersSubgraph(usersConfig, messaging);
    stack.push(users);
    const meals = await startMealsSubgraph(mealsConfig);
    stack.push(meals);
    const ordersConfig = loadOrdersConfig(
      env({
        ORDERS_DATABASE_URL: options.databaseUrls.orders,
        ORDERS_PORT: String(ports.orders),
        MEALS_SUBGRAPH_URL: meals.url,
      }),
    );
    const orders = await startOrdersSubgraph(ordersConfig);
    stack.push(orders);
    const paymentsConfig = loadPaymentsConfig(
      env({
        PAYMENTS_DATABASE_URL: options.databaseUrls.payments,
        PAYMENTS_PORT: String(ports.payments),
        ORDERS_SUBGRAPH_URL: orders.url,
      }),
    );
    const payments = await startPaymentsSubgraph(paymentsConfig);
    stack.push(payments);
    // The workers run here too, so the start command is the whole system in one process.
    if (options.workers ?? true) {
      stack.push(await startUsersWorker(usersConfig, messaging));
      stack.push(await startMealsWorker(mealsConfig, messaging));
      stack.push(await startOrdersWorker(ordersConfig, messaging));
      stack.push(await startPaymentsWorker(paymentsConfig, messaging));
    }
    const gateway = await startGateway(
      loadGatewayConfig(
        env({
          GATEWAY_PORT: String(ports.gateway),
          USERS_SUBGRAPH_URL: users.url,
          MEALS_SUBGRAPH_URL: meals.url,
          ORDERS_SUBGRAPH_URL: orders.url,
          PAYMENTS_SUBGRAPH_URL: payments.url,
        }),
      ),
      undefined,
      { eventBus: messaging.bus },
    );
    stack.push(gateway);
    return {
      gatewayUrl: gateway.url,
      subgraphUrls: { users: users.url, meals: meals.url, orders: orders.url, payments: payments.url },
      gateway,
      messaging,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The Redis an environment names (one node or a cluster), validated as every service validates it. */
export function redisTargetIn(env: Env): RedisTarget | undefined {
  return redisTargetOf(loadConfig('supergraph', z.object(redisEnv).superRefine(oneRedisMode), env));
}
