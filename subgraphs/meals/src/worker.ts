import { createLogger, OutboxRelay, type Logger, type Messaging } from '@food/platform';
import type { MealsConfig } from './config.js';

/**
 * The meals worker: publishes the outbox (a meal's availability and price changes) to the event
 * bus. Runs as its own process (worker-main.ts) or inside the dev start command.
 */
export async function startMealsWorker(
  config: MealsConfig,
  messaging: Messaging,
  logger: Logger = createLogger('meals-worker', config.LOG_LEVEL),
) {
  const relay = new OutboxRelay({
    name: 'meals',
    databaseUrl: config.MEALS_DATABASE_URL,
    bus: messaging.bus,
    logger,
  });
  await relay.start();
  logger.info('meals worker ready');
  return {
    relay,
    // The relay's own read of the outbox: the database answers and is migrated.
    readiness: { database: () => relay.lag() },
    close: () => relay.stop(),
  };
}
